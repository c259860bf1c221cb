CREATE TYPE account_kind AS ENUM ('person', 'team');
CREATE TABLE accounts (
  id bigserial PRIMARY KEY,
  handle text NOT NULL UNIQUE,
  kind account_kind NOT NULL DEFAULT 'person'
);
