INSERT INTO accounts (handle) VALUES ('andrewbrown'), ('bayko');
INSERT INTO posts (account_id, body)
SELECT id, 'hello from ' || handle FROM accounts WHERE kind = 'person';
