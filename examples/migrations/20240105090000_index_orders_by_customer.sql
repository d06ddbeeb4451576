-- no-transaction
-- CREATE INDEX CONCURRENTLY cannot run inside a transaction: ballast runs this
-- migration alone, outside the deploy transaction, and records it when it completes.
create index concurrently if not exists orders_customer_id_idx on orders (customer_id);
