//! The table locks a plan's statements wait for, read from their text: per table, the
//! lock modes (as `pg_locks` names them) whose holders make a statement wait. The
//! preflight counts a session as in the way only when the lock it holds conflicts
//! with one of them, so a report reading a table never refuses a plan that only
//! builds an index on it concurrently or validates a constraint.
//!
//! Modes follow PostgreSQL's own table (`AlterTableGetLockLevel` and the "Explicit
//! Locking" chapter), as "who makes it wait": `CREATE INDEX CONCURRENTLY` takes
//! `SHARE UPDATE EXCLUSIVE` but then waits out every transaction holding a lock that
//! conflicts with `SHARE` (the writers), so it counts as `SHARE`; `DROP INDEX
//! CONCURRENTLY` and the other concurrent forms wait for every holder, so they count as
//! `ACCESS EXCLUSIVE`. A statement this module does not know waits, to be safe, for
//! every holder of every table it names (`ACCESS EXCLUSIVE`); other tables a known
//! statement reads (`UPDATE ... FROM`, `INSERT ... SELECT`) count as `ACCESS SHARE`.

use pg_query::protobuf::{
    AlterTableCmd, AlterTableType, ConstrType, Node, ObjectType, RangeVar, ReindexObjectType,
};
use pg_query::NodeEnum;

use super::input::LintInput;
use super::nodes::{option_on, qualified};

/// PostgreSQL's table lock modes, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockMode {
    AccessShare,
    RowShare,
    RowExclusive,
    ShareUpdateExclusive,
    Share,
    ShareRowExclusive,
    Exclusive,
    AccessExclusive,
}

use LockMode::*;

impl LockMode {
    /// As `pg_locks.mode` names it.
    pub fn pg_name(self) -> &'static str {
        match self {
            AccessShare => "AccessShareLock",
            RowShare => "RowShareLock",
            RowExclusive => "RowExclusiveLock",
            ShareUpdateExclusive => "ShareUpdateExclusiveLock",
            Share => "ShareLock",
            ShareRowExclusive => "ShareRowExclusiveLock",
            Exclusive => "ExclusiveLock",
            AccessExclusive => "AccessExclusiveLock",
        }
    }

    /// From `pg_locks.mode`; `None` for what is not a table lock mode.
    pub fn from_pg_name(name: &str) -> Option<LockMode> {
        ALL.into_iter().find(|m| m.pg_name() == name)
    }

    /// Whether a session holding `self` makes a request for `other` wait (the table
    /// is symmetric).
    pub fn conflicts_with(self, other: LockMode) -> bool {
        let (weak, strong) = match self <= other {
            true => (self, other),
            false => (other, self),
        };
        match weak {
            AccessShare => strong == AccessExclusive,
            RowShare => strong >= Exclusive,
            RowExclusive => strong >= Share,
            ShareUpdateExclusive => strong >= ShareUpdateExclusive,
            Share => strong != Share && strong >= ShareUpdateExclusive,
            ShareRowExclusive | Exclusive | AccessExclusive => true,
        }
    }

    /// `LOCK TABLE`'s mode number (1 to 8, `lockdefs.h`).
    fn from_number(number: i32) -> Option<LockMode> {
        usize::try_from(number - 1)
            .ok()
            .and_then(|i| ALL.get(i).copied())
    }
}

const ALL: [LockMode; 8] = [
    AccessShare,
    RowShare,
    RowExclusive,
    ShareUpdateExclusive,
    Share,
    ShareRowExclusive,
    Exclusive,
    AccessExclusive,
];

/// A table the plan touches and the modes its statements wait for on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLocks {
    /// `schema.table`, lowercased (the schema defaulting to the migrations' schema).
    pub table: String,
    /// Strongest first, each once.
    pub modes: Vec<LockMode>,
}

impl TableLocks {
    /// Whether a session holding `held` on this table makes one of the statements wait.
    pub fn waits_for(&self, held: LockMode) -> bool {
        self.modes.iter().any(|m| m.conflicts_with(held))
    }
}

/// Every table the migrations' statements name, with the modes they wait for on it.
/// SQL the parser cannot read names no table (the lint reports it).
pub fn table_locks(inputs: &[LintInput], schema: &str) -> Vec<TableLocks> {
    let schema = schema.to_lowercase();
    let mut all: Vec<TableLocks> = Vec::new();
    let mut add = |table: String, mode: LockMode| match all.iter_mut().find(|t| t.table == table) {
        Some(t) if !t.modes.contains(&mode) => {
            t.modes.push(mode);
            t.modes.sort_by(|a, b| b.cmp(a));
        }
        Some(_) => {}
        None => all.push(TableLocks {
            table,
            modes: vec![mode],
        }),
    };
    for input in inputs {
        let Ok(parsed) = super::context::parse(&input.sql) else {
            continue;
        };
        for (node, span) in parsed.spans() {
            // A relation the statement creates: nobody holds a lock on it yet.
            let created = created(node).map(|r| key(&r, &schema));
            let named: Vec<String> = named_tables(&input.sql[span])
                .iter()
                .map(|name| key_of_name(name, &schema))
                .filter(|table| Some(table) != created.as_ref())
                .collect();
            match statement_locks(node) {
                Some(targets) => {
                    let targets: Vec<(String, LockMode)> = targets
                        .iter()
                        .map(|(table, mode)| (key(table, &schema), *mode))
                        .collect();
                    for (table, mode) in &targets {
                        add(table.clone(), *mode);
                    }
                    for table in named {
                        if !targets.iter().any(|(t, _)| *t == table) {
                            add(table, AccessShare);
                        }
                    }
                }
                None => {
                    for table in named {
                        add(table, AccessExclusive);
                    }
                }
            }
        }
    }
    all
}

/// The tables a statement's text names, as written.
fn named_tables(statement: &str) -> Vec<String> {
    pg_query::parse(statement, pg_query::ParserOptions::DEFAULT)
        .map(|p| p.tables.into_iter().map(|(name, _)| name).collect())
        .unwrap_or_default()
}

fn key(table: &RangeVar, schema: &str) -> String {
    match table.schemaname.as_str() {
        "" => format!("{schema}.{}", table.relname.to_lowercase()),
        own => format!("{}.{}", own.to_lowercase(), table.relname.to_lowercase()),
    }
}

fn key_of_name(name: &str, schema: &str) -> String {
    let name = name.to_lowercase();
    match name.contains('.') {
        true => name,
        false => format!("{schema}.{name}"),
    }
}

/// The table, view or index a statement creates.
fn created(node: &NodeEnum) -> Option<RangeVar> {
    match node {
        NodeEnum::CreateStmt(s) => s.relation.clone(),
        NodeEnum::ViewStmt(s) => s.view.clone(),
        NodeEnum::CreateTableAsStmt(s) => s.into.as_ref().and_then(|i| i.rel.clone()),
        _ => None,
    }
}

/// The tables one statement locks and how, or `None` when it is not a statement this
/// module knows.
fn statement_locks(node: &NodeEnum) -> Option<Vec<(RangeVar, LockMode)>> {
    let one = |relation: &Option<RangeVar>, mode| relation.clone().map(|r| vec![(r, mode)]);
    let each = |relations: &[Node], mode| {
        relations
            .iter()
            .filter_map(|n| match &n.node {
                Some(NodeEnum::RangeVar(r)) => Some((r.clone(), mode)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    match node {
        NodeEnum::SelectStmt(s) => match s.locking_clause.is_empty() {
            true => Some(Vec::new()),
            // FOR UPDATE / FOR SHARE: row locks, and RowShare on the tables it reads.
            false => None,
        },
        NodeEnum::InsertStmt(s) => one(&s.relation, RowExclusive),
        NodeEnum::UpdateStmt(s) => one(&s.relation, RowExclusive),
        NodeEnum::DeleteStmt(s) => one(&s.relation, RowExclusive),
        NodeEnum::MergeStmt(s) => one(&s.relation, RowExclusive),
        // Concurrently or not, it waits for the writers (see the module's doc).
        NodeEnum::IndexStmt(s) => one(&s.relation, Share),
        NodeEnum::AlterTableStmt(s) => {
            let relation = s.relation.clone()?;
            // ALTER INDEX / SEQUENCE / VIEW name objects whose table is not known here.
            if s.objtype() != ObjectType::ObjectTable {
                return None;
            }
            let mut locks = Vec::new();
            let mut strongest = AccessShare;
            for cmd in &s.cmds {
                let Some(NodeEnum::AlterTableCmd(cmd)) = &cmd.node else {
                    return None;
                };
                let (mode, others) = alter_table_cmd(cmd);
                strongest = strongest.max(mode);
                locks.extend(others);
            }
            locks.push((relation, strongest));
            Some(locks)
        }
        NodeEnum::CreateStmt(s) => {
            // A new table: nobody holds it. The tables its foreign keys reference
            // take SHARE ROW EXCLUSIVE; a new partition locks its parent.
            let mut locks = Vec::new();
            for element in &s.table_elts {
                let constraints: Vec<&Node> = match &element.node {
                    Some(NodeEnum::ColumnDef(c)) => c.constraints.iter().collect(),
                    Some(NodeEnum::Constraint(_)) => vec![element],
                    _ => Vec::new(),
                };
                for c in constraints {
                    if let Some(NodeEnum::Constraint(c)) = &c.node {
                        if c.contype() == ConstrType::ConstrForeign {
                            locks.extend(c.pktable.clone().map(|t| (t, ShareRowExclusive)));
                        }
                    }
                }
            }
            if s.partbound.is_some() {
                locks.extend(each(&s.inh_relations, AccessExclusive));
            }
            Some(locks)
        }
        NodeEnum::DropStmt(s) => {
            let relations = matches!(
                s.remove_type(),
                ObjectType::ObjectTable
                    | ObjectType::ObjectIndex
                    | ObjectType::ObjectView
                    | ObjectType::ObjectMatview
                    | ObjectType::ObjectSequence
                    | ObjectType::ObjectForeignTable
            );
            if !relations {
                return None;
            }
            Some(
                s.objects
                    .iter()
                    .filter_map(|o| match &o.node {
                        Some(NodeEnum::List(list)) => qualified(&list.items),
                        _ => None,
                    })
                    .map(|r| (r, AccessExclusive))
                    .collect(),
            )
        }
        NodeEnum::RenameStmt(s) => one(&s.relation, AccessExclusive),
        NodeEnum::CreateTrigStmt(s) => one(&s.relation, ShareRowExclusive),
        NodeEnum::TruncateStmt(s) => Some(each(&s.relations, AccessExclusive)),
        NodeEnum::LockStmt(s) => Some(each(&s.relations, LockMode::from_number(s.mode)?)),
        NodeEnum::ClusterStmt(s) => one(&s.relation, AccessExclusive),
        NodeEnum::VacuumStmt(s) => {
            let mode = match s.is_vacuumcmd && option_on(&s.options, "full") {
                true => AccessExclusive,
                false => ShareUpdateExclusive,
            };
            Some(
                s.rels
                    .iter()
                    .filter_map(|n| match &n.node {
                        Some(NodeEnum::VacuumRelation(v)) => v.relation.clone(),
                        _ => None,
                    })
                    .map(|r| (r, mode))
                    .collect(),
            )
        }
        NodeEnum::ReindexStmt(s) => {
            let mode = match (s.kind(), option_on(&s.params, "concurrently")) {
                (ReindexObjectType::ReindexObjectTable, false) => Share,
                _ => AccessExclusive,
            };
            one(&s.relation, mode)
        }
        NodeEnum::RefreshMatViewStmt(s) => one(
            &s.relation,
            match s.concurrent {
                true => Exclusive,
                false => AccessExclusive,
            },
        ),
        NodeEnum::CreatePolicyStmt(s) => one(&s.table, AccessExclusive),
        NodeEnum::AlterPolicyStmt(s) => one(&s.table, AccessExclusive),
        NodeEnum::RuleStmt(s) => one(&s.relation, AccessExclusive),
        NodeEnum::CreateStatsStmt(s) => Some(each(&s.relations, ShareUpdateExclusive)),
        // Views and CREATE TABLE AS read their sources; COMMENT ON and GRANT take no
        // lock that waits for readers or writers.
        NodeEnum::ViewStmt(_)
        | NodeEnum::CreateTableAsStmt(_)
        | NodeEnum::GrantStmt(_)
        | NodeEnum::CommentStmt(_) => Some(Vec::new()),
        _ => None,
    }
}

/// The mode one `ALTER TABLE` subcommand takes on its table, and the other tables it
/// locks (a foreign key's referenced table, a partition attached or detached).
fn alter_table_cmd(cmd: &AlterTableCmd) -> (LockMode, Vec<(RangeVar, LockMode)>) {
    let def = cmd.def.as_ref().and_then(|d| d.node.as_ref());
    match (cmd.subtype(), def) {
        (AlterTableType::AtAddConstraint, Some(NodeEnum::Constraint(c)))
            if c.contype() == ConstrType::ConstrForeign =>
        {
            let referenced = c.pktable.clone().map(|t| (t, ShareRowExclusive));
            (ShareRowExclusive, referenced.into_iter().collect())
        }
        (
            AlterTableType::AtValidateConstraint
            | AlterTableType::AtSetStatistics
            | AlterTableType::AtClusterOn
            | AlterTableType::AtDropCluster,
            _,
        ) => (ShareUpdateExclusive, Vec::new()),
        (
            AlterTableType::AtEnableTrig
            | AlterTableType::AtEnableAlwaysTrig
            | AlterTableType::AtEnableReplicaTrig
            | AlterTableType::AtDisableTrig
            | AlterTableType::AtEnableTrigAll
            | AlterTableType::AtDisableTrigAll
            | AlterTableType::AtEnableTrigUser
            | AlterTableType::AtDisableTrigUser,
            _,
        ) => (ShareRowExclusive, Vec::new()),
        (AlterTableType::AtAttachPartition, Some(NodeEnum::PartitionCmd(p))) => (
            ShareUpdateExclusive,
            p.name
                .clone()
                .map(|t| (t, AccessExclusive))
                .into_iter()
                .collect(),
        ),
        // Concurrently, it waits for every holder too (see the module's doc).
        (AlterTableType::AtDetachPartition, Some(NodeEnum::PartitionCmd(p))) => (
            AccessExclusive,
            p.name
                .clone()
                .map(|t| (t, AccessExclusive))
                .into_iter()
                .collect(),
        ),
        _ => (AccessExclusive, Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::rules::testing::input;

    fn locks(sql: &str) -> Vec<(String, Vec<&'static str>)> {
        table_locks(&[input(sql)], "public")
            .into_iter()
            .map(|t| (t.table, t.modes.iter().map(|m| m.pg_name()).collect()))
            .collect()
    }

    fn pair(table: &str, modes: &[&'static str]) -> (String, Vec<&'static str>) {
        (table.to_string(), modes.to_vec())
    }

    #[test]
    fn the_conflict_table_is_postgresqls() {
        // Each mode's conflicts, from the "Conflicting Lock Modes" table.
        let expected: [(LockMode, &[LockMode]); 8] = [
            (AccessShare, &[AccessExclusive]),
            (RowShare, &[Exclusive, AccessExclusive]),
            (
                RowExclusive,
                &[Share, ShareRowExclusive, Exclusive, AccessExclusive],
            ),
            (
                ShareUpdateExclusive,
                &[
                    ShareUpdateExclusive,
                    Share,
                    ShareRowExclusive,
                    Exclusive,
                    AccessExclusive,
                ],
            ),
            (
                Share,
                &[
                    RowExclusive,
                    ShareUpdateExclusive,
                    ShareRowExclusive,
                    Exclusive,
                    AccessExclusive,
                ],
            ),
            (
                ShareRowExclusive,
                &[
                    RowExclusive,
                    ShareUpdateExclusive,
                    Share,
                    ShareRowExclusive,
                    Exclusive,
                    AccessExclusive,
                ],
            ),
            (
                Exclusive,
                &[
                    RowShare,
                    RowExclusive,
                    ShareUpdateExclusive,
                    Share,
                    ShareRowExclusive,
                    Exclusive,
                    AccessExclusive,
                ],
            ),
            (AccessExclusive, &ALL),
        ];
        for (mode, conflicts) in expected {
            for other in ALL {
                assert_eq!(
                    mode.conflicts_with(other),
                    conflicts.contains(&other),
                    "{mode:?} against {other:?}"
                );
            }
            assert_eq!(LockMode::from_pg_name(mode.pg_name()), Some(mode));
        }
    }

    #[test]
    fn ddl_waits_for_what_postgresql_makes_it_wait_for() {
        assert_eq!(
            locks("alter table hot add column flag boolean"),
            [pair("public.hot", &["AccessExclusiveLock"])]
        );
        assert_eq!(
            locks("create index concurrently hot_v on hot (v)"),
            [pair("public.hot", &["ShareLock"])]
        );
        assert_eq!(
            locks("alter table shop.orders validate constraint orders_fk"),
            [pair("shop.orders", &["ShareUpdateExclusiveLock"])]
        );
        assert_eq!(
            locks("alter table orders add constraint fk foreign key (c) references customers (id) not valid"),
            [
                pair("public.customers", &["ShareRowExclusiveLock"]),
                pair("public.orders", &["ShareRowExclusiveLock"]),
            ]
        );
        assert_eq!(
            locks("create table items (id int, order_id int references orders (id))"),
            [pair("public.orders", &["ShareRowExclusiveLock"])]
        );
        assert_eq!(
            locks("update hot set v = s.v from staging s where s.id = hot.id"),
            [
                pair("public.hot", &["RowExclusiveLock"]),
                pair("public.staging", &["AccessShareLock"]),
            ]
        );
        assert_eq!(
            locks("lock table hot in share row exclusive mode"),
            [pair("public.hot", &["ShareRowExclusiveLock"])]
        );
        assert_eq!(
            locks("drop index concurrently hot_v"),
            [pair("public.hot_v", &["AccessExclusiveLock"])]
        );
        // Several statements on one table: each mode once, strongest first.
        assert_eq!(
            locks("create index hot_v on hot (v); alter table hot add column c int; insert into hot values (1)"),
            [pair("public.hot", &["AccessExclusiveLock", "ShareLock", "RowExclusiveLock"])]
        );
        // Not known here: waits for everyone on every table it names.
        assert_eq!(
            locks("select * from hot for update"),
            [pair("public.hot", &["AccessExclusiveLock"])]
        );
    }

    #[test]
    fn a_reader_is_in_the_way_of_a_rewrite_but_not_of_a_concurrent_build() {
        let build = &table_locks(
            &[input("create index concurrently hot_v on hot (v)")],
            "public",
        )[0];
        assert!(!build.waits_for(AccessShare));
        assert!(build.waits_for(RowExclusive));
        let add = TableLocks {
            table: "public.hot".into(),
            modes: vec![AccessExclusive],
        };
        assert!(add.waits_for(AccessShare));
    }
}
