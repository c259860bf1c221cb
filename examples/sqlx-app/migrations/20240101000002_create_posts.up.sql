CREATE TABLE posts (
  id bigserial PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES accounts (id),
  body text NOT NULL
);
