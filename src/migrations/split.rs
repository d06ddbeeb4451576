//! Splitting a migration into statements, for migrations that run outside a transaction.
//!
//! PostgreSQL runs a multi-statement query string as one implicit transaction, so
//! `CREATE INDEX CONCURRENTLY` must be sent alone. This is a lexer, not a parser: it
//! knows exactly where statements can end (a `;` outside quotes, dollar quotes and
//! comments) and nothing more.

/// One statement and the 1-based line of the file it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub line: usize,
    pub sql: String,
}

pub fn split_statements(sql: &str) -> Vec<Statement> {
    spans(sql)
        .into_iter()
        .map(|span| Statement {
            line: 1 + sql[..span.start].matches('\n').count(),
            sql: sql[span].to_string(),
        })
        .collect()
}

/// Where each statement of `sql` is (its code, surrounding whitespace left out).
fn spans(sql: &str) -> Vec<std::ops::Range<usize>> {
    let bytes = sql.as_bytes();
    let mut spans = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' if is_escape_string(bytes, i) => i = skip_escape_string(bytes, i),
            b'\'' | b'"' => i = skip_quoted(bytes, i, bytes[i]),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_block_comment(bytes, i),
            b'$' => i = skip_dollar_quoted(sql, i),
            b';' => {
                push(&mut spans, sql, start, i + 1);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    push(&mut spans, sql, start, bytes.len());
    spans
}

fn push(spans: &mut Vec<std::ops::Range<usize>>, sql: &str, start: usize, end: usize) {
    let text = &sql[start..end];
    if !has_code(text) {
        return;
    }
    let leading = text.len() - text.trim_start().len();
    let trailing = text.len() - text.trim_end().len();
    spans.push(start + leading..end - trailing);
}

/// What a statement does to the transaction, read from its first words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    /// `BEGIN`, `BEGIN TRANSACTION`/`WORK`, `START TRANSACTION`: a plain one.
    Begin,
    /// `BEGIN ISOLATION LEVEL ...`, `BEGIN READ ONLY`: one with its own settings.
    BeginWith,
    /// `COMMIT`, `END` (and their `TRANSACTION`/`WORK` forms).
    Commit,
    /// `ROLLBACK`, `ABORT`, `COMMIT AND CHAIN`, `PREPARE TRANSACTION`...
    Other,
}

fn control(statement: &str) -> Option<Control> {
    let code = strip_leading_comments(statement).to_ascii_lowercase();
    let words: Vec<&str> = code
        .split(|c: char| c.is_whitespace() || c == ';')
        .filter(|w| !w.is_empty())
        .collect();
    match words.as_slice() {
        ["begin"] | ["begin", "transaction" | "work"] | ["start", "transaction"] => {
            Some(Control::Begin)
        }
        ["begin", "isolation" | "read" | "not" | "deferrable" | "transaction" | "work", ..]
        | ["start", "transaction", ..] => Some(Control::BeginWith),
        ["commit" | "end"] | ["commit" | "end", "transaction" | "work"] => Some(Control::Commit),
        ["rollback", "to", ..] => None, // ROLLBACK TO SAVEPOINT stays inside
        ["commit" | "rollback" | "abort" | "end", ..] => Some(Control::Other),
        ["prepare", "transaction", ..] => Some(Control::Other),
        _ => None,
    }
}

/// Each statement's span and what it does to the transaction. The `END` closing a
/// `BEGIN ATOMIC` function body (whose statements the lexer splits, since they are no
/// dollar-quoted text) is part of the function, not a commit.
fn controls(sql: &str) -> Vec<(std::ops::Range<usize>, Option<Control>)> {
    let mut in_atomic_body = false;
    spans(sql)
        .into_iter()
        .map(|span| {
            let text = &sql[span.clone()];
            let mut found = control(text);
            if in_atomic_body
                && found.is_some()
                && text
                    .trim_end_matches(';')
                    .trim()
                    .eq_ignore_ascii_case("end")
            {
                found = None;
                in_atomic_body = false;
            }
            if strip_leading_comments(text)
                .to_ascii_lowercase()
                .split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .any(|w| w == ["begin", "atomic"])
            {
                in_atomic_body = true;
            }
            (span, found)
        })
        .collect()
}

/// A file wrapped in its own transaction and nothing else (`BEGIN;` first, `COMMIT;`
/// last, no other transaction control), as golang-migrate users write them: the text
/// with the two blanked out (spaces, so lines keep their numbers), to run inside
/// ballast's transaction, which is the same atomic unit. `None` otherwise.
pub fn unwrap_transaction(sql: &str) -> Option<String> {
    let spans = controls(sql);
    let ((first, begin), (last, commit)) = (spans.first()?, spans.last()?);
    if spans.len() < 2
        || *begin != Some(Control::Begin)
        || *commit != Some(Control::Commit)
        || spans[1..spans.len() - 1].iter().any(|(_, c)| c.is_some())
    {
        return None;
    }
    let mut text = sql.to_string();
    for span in [last, first] {
        let blank: String = sql[span.clone()]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        text.replace_range(span.clone(), &blank);
    }
    Some(text)
}

/// The first statement that ends or starts a transaction (`BEGIN`, `COMMIT`, `END`, …),
/// if any. `BEGIN ATOMIC` (a function body) is not transaction control.
pub fn transaction_control(sql: &str) -> Option<Statement> {
    controls(sql)
        .into_iter()
        .find(|(_, c)| c.is_some())
        .map(|(span, _)| Statement {
            line: 1 + sql[..span.start].matches('\n').count(),
            sql: sql[span].to_string(),
        })
}

/// The 1-based line of a 1-based character position in `sql` (where the server says
/// an error is, counted over the whole text it was sent).
pub fn line_of_position(sql: &str, position: usize) -> usize {
    1 + sql
        .chars()
        .take(position.saturating_sub(1))
        .filter(|c| *c == '\n')
        .count()
}

fn strip_leading_comments(mut text: &str) -> &str {
    loop {
        text = text.trim_start();
        if let Some(rest) = text.strip_prefix("--") {
            text = rest.split_once('\n').map_or("", |(_, after)| after);
        } else if text.starts_with("/*") {
            text = &text[skip_block_comment(text.as_bytes(), 0)..];
        } else {
            return text;
        }
    }
}

/// True when `text` holds more than whitespace, comments and semicolons.
fn has_code(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = text[i..].find('\n').map_or(bytes.len(), |n| i + n + 1)
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_block_comment(bytes, i),
            b';' => i += 1,
            c if c.is_ascii_whitespace() => i += 1,
            _ => return true,
        }
    }
    false
}

fn skip_quoted(bytes: &[u8], open: usize, quote: u8) -> usize {
    let mut i = open + 1;
    while i < bytes.len() {
        if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2; // doubled quote is an escaped quote
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

/// `E'...'`: the quote follows a lone `E` (not the end of an identifier such as `some'`).
fn is_escape_string(bytes: &[u8], quote: usize) -> bool {
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    quote >= 1
        && matches!(bytes[quote - 1], b'E' | b'e')
        && (quote == 1 || !is_ident(bytes[quote - 2]))
}

/// In `E'...'` a backslash escapes the next character, quotes included.
fn skip_escape_string(bytes: &[u8], open: usize) -> usize {
    let mut i = open + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'\'' if bytes.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Block comments nest in PostgreSQL.
fn skip_block_comment(bytes: &[u8], open: usize) -> usize {
    let mut depth = 0;
    let mut i = open;
    while i + 1 < bytes.len() {
        if bytes[i] == b'/' && bytes[i + 1] == b'*' {
            depth += 1;
            i += 2;
        } else if bytes[i] == b'*' && bytes[i + 1] == b'/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// `$tag$ ... $tag$`; a `$` that does not open a tag (`$1`) is an ordinary character.
fn skip_dollar_quoted(sql: &str, open: usize) -> usize {
    let rest = &sql[open + 1..];
    let tag_len = rest
        .char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map_or(rest.len(), |(n, _)| n);
    let after_tag = open + 1 + tag_len;
    let starts_with_digit = rest.chars().next().is_some_and(|c| c.is_ascii_digit());
    if starts_with_digit || sql.as_bytes().get(after_tag) != Some(&b'$') {
        return open + 1;
    }
    let delimiter = &sql[open..=after_tag];
    match sql[after_tag + 1..].find(delimiter) {
        Some(n) => after_tag + 1 + n + delimiter.len(),
        None => sql.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<String> {
        split_statements(sql).into_iter().map(|s| s.sql).collect()
    }

    #[test]
    fn splits_on_semicolons_with_lines() {
        let got = split_statements(
            "create table a (id int);\n\ncreate index concurrently i on a (id);\n",
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].line, 3);
        assert_eq!(got[1].sql, "create index concurrently i on a (id);");
    }

    #[test]
    fn ignores_semicolons_in_quotes_comments_and_dollar_bodies() {
        let sql = "insert into t values ('a;b', \"x;y\"); -- c;d\n/* e; /* nested; */ f; */\n\
                   create function f() returns int as $body$ select 1; $body$ language sql;\n\
                   select $1;";
        assert_eq!(texts(sql).len(), 3, "{:?}", texts(sql));
    }

    #[test]
    fn drops_comment_only_tail_and_keeps_unterminated_last_statement() {
        assert_eq!(
            texts("-- no-transaction\nselect 1;\n-- trailing\n"),
            vec!["-- no-transaction\nselect 1;"]
        );
        assert_eq!(texts("select 1; select 2"), vec!["select 1;", "select 2"]);
    }

    #[test]
    fn backslash_escapes_in_e_strings() {
        assert_eq!(texts(r"select E'it\'s; fine'; select 2;").len(), 2);
        // A plain string ending in a backslash is not an escape string.
        assert_eq!(texts(r"select 'C:\'; select 2;").len(), 2);
        assert_eq!(texts(r"select some'x;y'; select 2;").len(), 2);
    }

    #[test]
    fn escaped_quotes_do_not_end_strings() {
        assert_eq!(texts("select 'it''s; fine'; select 2;").len(), 2);
    }

    #[test]
    fn transaction_control_is_found_and_a_function_bodys_end_is_not() {
        let found = |sql: &str| transaction_control(sql).map(|s| (s.line, s.sql));
        assert_eq!(
            found("create table a (id int);\nend;\n"),
            Some((2, "end;".into()))
        );
        assert_eq!(
            found("select 1;\nCOMMIT WORK;"),
            Some((2, "COMMIT WORK;".into()))
        );
        assert_eq!(found("savepoint s;\nrollback to s;\n"), None);
        assert_eq!(
            found(
                "create function f() returns int language sql\nbegin atomic\n  select 1;\nend;\n"
            ),
            None
        );
        assert_eq!(found("do $$ begin perform 1; end $$;\n"), None);
    }

    #[test]
    fn a_file_wrapped_in_its_own_transaction_is_unwrapped_with_its_lines_kept() {
        let sql = "BEGIN;\ncreate table a (id int);\ninsert into a values (1);\nCOMMIT;\n";
        let unwrapped = unwrap_transaction(sql).unwrap();
        assert_eq!(unwrapped.lines().count(), sql.lines().count());
        assert_eq!(transaction_control(&unwrapped), None);
        assert_eq!(
            split_statements(&unwrapped)[0],
            Statement {
                line: 2,
                sql: "create table a (id int);".into()
            }
        );
        assert!(unwrap_transaction("begin;\nselect 1;\ncommit;\nselect 2;\n").is_none());
        assert!(
            unwrap_transaction("begin;\nselect 1;\ncommit;\nbegin;\nselect 2;\ncommit;\n")
                .is_none()
        );
        assert!(
            unwrap_transaction("begin isolation level serializable;\nselect 1;\ncommit;\n")
                .is_none(),
            "its own isolation level is no plain wrapper"
        );
        assert!(unwrap_transaction("start transaction;\nselect 1;\nend;\n").is_some());
    }

    #[test]
    fn server_positions_map_to_lines() {
        assert_eq!(line_of_position("select 1;\nselect x;", 12), 2);
        assert_eq!(line_of_position("select 1;", 1), 1);
        assert_eq!(line_of_position("é;\nx", 4), 2);
    }
}
