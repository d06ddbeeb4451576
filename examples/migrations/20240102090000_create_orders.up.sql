create table orders (
    id bigint generated always as identity primary key,
    customer_id bigint not null references customers (id),
    total_cents bigint not null check (total_cents >= 0),
    placed_at timestamptz not null default now()
);
