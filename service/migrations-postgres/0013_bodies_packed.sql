-- Bodies compressed by the service (see the `packing` module): a zero
-- byte, the JSON's length, the LZ4 block; a Keycloak email's 7 KB of JSON
-- in about 2.7 KB. The server neither compresses them again (storage
-- EXTERNAL) nor, up to about 4 KB, moves them out of the row: before, the
-- 7 KB text compressed by the server to 2.7 KB was still over its 2 KB
-- threshold and went to the TOAST table as two chunks, two more rows and
-- index entries per message, read back by each claim. Sealed bodies stay
-- text in `body`; rows written before keep the form they have.
ALTER TABLE bodies ADD COLUMN packed BYTEA;
ALTER TABLE bodies ALTER COLUMN packed SET STORAGE EXTERNAL;
ALTER TABLE bodies SET (toast_tuple_target = 4080);
ALTER TABLE bodies DROP CONSTRAINT bodies_one_form;
ALTER TABLE bodies ADD CONSTRAINT bodies_one_form
    CHECK (num_nonnulls(message, body, packed) = 1) NOT VALID;
