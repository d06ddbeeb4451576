//! SQL for the lock rules' fixes, printed by PostgreSQL's own deparser, so a fix that
//! repeats the user's statement with a change (a clause taken out, `ON ONLY`, `NOT VALID`)
//! keeps every clause as PostgreSQL reads it.

use pg_query::protobuf::{Node, RangeVar};
use pg_query::{NodeEnum, ParserOptions};

use crate::lint::Context;

/// `rv` named by its `schema.table` key, for SQL in a fix ([`sql`]) that must say which
/// table as the finding does.
pub(super) fn keyed(ctx: &Context<'_>, rv: &RangeVar) -> RangeVar {
    let key = ctx.key(rv);
    let schema = key
        .strip_suffix(rv.relname.as_str())
        .and_then(|s| s.strip_suffix('.'))
        .unwrap_or_default();
    RangeVar {
        schemaname: schema.to_string(),
        ..rv.clone()
    }
}

/// A statement as SQL.
pub(super) fn sql(statement: NodeEnum) -> Option<String> {
    statement.deparse(Default::default()).ok()
}

/// An expression as SQL (a CHECK's condition, a partition bound's value): deparsed as
/// the target of a `SELECT`, the only way the deparser prints a bare expression.
pub(super) fn expression_sql(expr: &Node) -> Option<String> {
    let parsed = pg_query::parse("SELECT 1", ParserOptions::DEFAULT).ok()?;
    let mut select = match parsed.protobuf.stmts.into_iter().next()?.stmt?.node? {
        NodeEnum::SelectStmt(select) => select,
        _ => return None,
    };
    match select.target_list.first_mut()?.node.as_mut()? {
        NodeEnum::ResTarget(target) => target.val = Some(Box::new(expr.clone())),
        _ => return None,
    }
    sql(NodeEnum::SelectStmt(select))?
        .strip_prefix("SELECT ")
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use pg_query::{NodeEnum, ParserOptions};

    fn first_target(sql: &str) -> pg_query::protobuf::Node {
        let parsed = pg_query::parse(sql, ParserOptions::DEFAULT).unwrap();
        let node = parsed.protobuf.stmts[0].stmt.clone().unwrap().node.unwrap();
        let NodeEnum::SelectStmt(select) = node else {
            unreachable!()
        };
        match select.target_list[0].node.clone().unwrap() {
            NodeEnum::ResTarget(t) => *t.val.unwrap(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn expressions_are_printed_as_postgresql_reads_them() {
        let expr = first_target("select discount_cents >= 0 and note <> 'it''s'");
        assert_eq!(
            super::expression_sql(&expr).as_deref(),
            Some("discount_cents >= 0 AND note <> 'it''s'")
        );
    }
}
