-- diesel layout: a folder with up.sql and down.sql
alter table orders add column status text not null default 'placed';
alter table orders add constraint orders_status_check
    check (status in ('placed', 'paid', 'shipped', 'cancelled'));
