-- no-transaction
CREATE INDEX CONCURRENTLY posts_account ON posts (account_id);
