-- Messages at rest may be encrypted (MAILBRIDGE_ENCRYPTION_KEYS): the sealed
-- `message` column can no longer be searched, so the recipients (to, cc and
-- bcc, lower case, joined by ", ") are kept beside it in plain text for
-- searching by address. NULL for rows stored before this column existed.
ALTER TABLE messages ADD COLUMN recipients TEXT;
