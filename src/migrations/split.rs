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
    let bytes = sql.as_bytes();
    let mut statements = Vec::new();
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
                push(&mut statements, sql, start, i + 1);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    push(&mut statements, sql, start, bytes.len());
    statements
}

fn push(statements: &mut Vec<Statement>, sql: &str, start: usize, end: usize) {
    let text = &sql[start..end];
    if !has_code(text) {
        return;
    }
    let leading = text.len() - text.trim_start().len();
    let line = 1 + sql[..start + leading].matches('\n').count();
    statements.push(Statement {
        line,
        sql: text.trim().to_string(),
    });
}

/// The first statement that ends or starts a transaction (`BEGIN`, `COMMIT`, …), if any.
/// `BEGIN ATOMIC` (a function body) is not transaction control.
pub fn transaction_control(sql: &str) -> Option<Statement> {
    split_statements(sql).into_iter().find(|statement| {
        let code = strip_leading_comments(&statement.sql).to_ascii_lowercase();
        let mut words = code
            .split(|c: char| c.is_whitespace() || c == ';')
            .filter(|w| !w.is_empty());
        match (words.next(), words.next()) {
            (Some("begin"), None | Some("transaction" | "work" | "isolation" | "read")) => true,
            (Some("start"), Some("transaction")) => true,
            (Some("rollback"), Some("to")) => false, // ROLLBACK TO SAVEPOINT stays inside
            (Some("commit" | "rollback" | "abort"), _) => true,
            _ => false,
        }
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
    fn server_positions_map_to_lines() {
        assert_eq!(line_of_position("select 1;\nselect x;", 12), 2);
        assert_eq!(line_of_position("select 1;", 1), 1);
        assert_eq!(line_of_position("é;\nx", 4), 2);
    }
}
