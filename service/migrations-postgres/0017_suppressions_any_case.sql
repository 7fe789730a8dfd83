-- The suppression list keeps an address in lower case, its local part too:
-- an entry stands for every case spelling of its address (a provider may
-- report `Ada@example.com` as `ada@example.com`). Entries that differ in
-- case only are one address: the first listed stays. Under a database
-- collation that lowers ASCII letters only, lookups also try that form.
DELETE FROM suppressions WHERE (tenant, email) IN (
    SELECT tenant, email FROM (
        SELECT tenant, email, row_number() OVER (
            PARTITION BY tenant, lower(email) ORDER BY created_at, email
        ) AS n
        FROM suppressions
    ) AS listed
    WHERE n > 1
);
UPDATE suppressions SET email = lower(email) WHERE email <> lower(email);
