ALTER TYPE account_kind ADD VALUE 'bot';
