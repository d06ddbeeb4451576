//! The shape of `src/`, held to what docs/architecture.md says: dependencies point
//! down the layers, the engine imports nothing above it, no import circle spans more
//! than three files, and Alembic's types stay in the engine (and the stamp stage).
//!
//! A file's imports are read from its text (before its `#[cfg(test)]` module): `use`
//! trees and inline `crate::`/`super::` paths, resolved to the file that defines the
//! item (through a `mod.rs`'s `pub use`, as the compiler does).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// Layers, top to bottom: a file may import its own layer or any below.
const LAYERS: &[(&str, u8)] = &[
    ("main", 7),
    ("cli", 6),
    ("commands", 6),
    ("runner", 5),
    ("stages", 4),
    ("pipeline", 3),
    ("resume", 3),
    ("preflight", 3),
    ("rehearse", 3),
    ("engine", 2),
    ("backup", 2),
];

fn layer(m: &Module) -> u8 {
    let top = m.first().map(String::as_str).unwrap_or("lib");
    LAYERS
        .iter()
        .find(|(name, _)| *name == top)
        .map(|(_, layer)| *layer)
        // storage, db, migrations, lint, config, plan, events, report, text, ...
        .unwrap_or(1)
}

struct Tree {
    files: BTreeMap<Module, PathBuf>,
    /// `(mod.rs module, item)` → the child module a `pub use` takes it from.
    reexports: BTreeMap<(Module, String), Module>,
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn read_tree() -> Tree {
    let mut files = BTreeMap::new();
    let mut stack = vec![src()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src()).unwrap().with_extension("");
                let mut module: Module = rel.iter().map(|p| p.to_string_lossy().into()).collect();
                if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
                    module.pop();
                }
                files.insert(module, path);
            }
        }
    }
    let mut tree = Tree {
        files,
        reexports: BTreeMap::new(),
    };
    let mut reexports = BTreeMap::new();
    for (module, path) in &tree.files {
        let text = code_of(path);
        for statement in statements(&text).filter(|s| s.starts_with("pub use ")) {
            for item in use_paths(&statement["pub use ".len()..]) {
                let Some(first) = item.first() else { continue };
                let mut child = module.clone();
                child.push(first.clone());
                if tree.files.contains_key(&child) {
                    let full: Module = module.iter().chain(&item).cloned().collect();
                    if let Some(target) = tree.longest_module(&full) {
                        reexports.insert((module.clone(), item.last().unwrap().clone()), target);
                    }
                }
            }
        }
    }
    tree.reexports = reexports;
    tree
}

impl Tree {
    fn longest_module(&self, full: &[String]) -> Option<Module> {
        (1..=full.len())
            .rev()
            .map(|n| full[..n].to_vec())
            .find(|m| self.files.contains_key(m))
    }

    /// The file a path written in `me` names, if it is one of ours.
    fn resolve(&self, me: &Module, path: &[String]) -> Option<Module> {
        let (mut base, rest): (Module, &[String]) = match path.first()?.as_str() {
            "crate" => (Vec::new(), &path[1..]),
            "self" => (me.clone(), &path[1..]),
            "super" => {
                let mut base = me.clone();
                let mut rest = path;
                while rest.first().map(String::as_str) == Some("super") {
                    base.pop();
                    rest = &rest[1..];
                }
                (base, rest)
            }
            first => {
                let mut child = me.clone();
                child.push(first.to_string());
                if !self.files.contains_key(&child) {
                    return None;
                }
                (me.clone(), path)
            }
        };
        base.extend(rest.iter().filter(|p| *p != "self").cloned());
        let found = self.longest_module(&base)?;
        let item = base.get(found.len());
        match item.and_then(|item| self.reexports.get(&(found.clone(), item.clone()))) {
            Some(target) => Some(target.clone()),
            None => Some(found),
        }
    }

    fn imports(&self) -> BTreeMap<Module, BTreeSet<Module>> {
        let mut edges = BTreeMap::new();
        for (module, path) in &self.files {
            let text = code_of(path);
            let mut to = BTreeSet::new();
            let mut rest = String::new();
            for statement in statements(&text) {
                match statement.find("use ") {
                    Some(at)
                        if statement[..at]
                            .trim()
                            .trim_start_matches("pub")
                            .trim()
                            .is_empty()
                            || statement[..at].trim().starts_with("pub(") =>
                    {
                        for item in use_paths(&statement[at + 4..]) {
                            to.extend(self.resolve(module, &item));
                        }
                    }
                    _ => rest.push_str(&statement),
                }
            }
            for path in inline_paths(&rest) {
                to.extend(self.resolve(module, &path));
            }
            to.remove(module);
            edges.insert(module.clone(), to);
        }
        edges
    }
}

/// A file's code: comments and literals blanked, its test module cut off.
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => &text,
    };
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == 'r' && raw_string_at(&chars, i) {
            let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
            let mut j = i + 2 + hashes;
            while j < chars.len() {
                let closes =
                    chars[j] == '"' && (1..=hashes).all(|k| chars.get(j + k) == Some(&'#'));
                if closes {
                    break;
                }
                j += 1;
            }
            i = j + 1 + hashes;
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3;
        } else if c == '\'' && chars.get(i + 1) == Some(&'\\') {
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    // `pub(in crate::engine)` is a visibility, not an import.
    out.replace("pub(in ", "pub(in_")
}

/// `r"..."` or `r#"..."#` starts at `i` (not `r#ident`, not the end of a name).
fn raw_string_at(chars: &[char], i: usize) -> bool {
    let after_name = i > 0 && ident(chars.get(i - 1));
    let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
    !after_name && chars.get(i + 1 + hashes) == Some(&'"')
}

fn ident(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// The text cut at `;` and braces' ends: each `use` statement comes out whole.
fn statements(code: &str) -> impl Iterator<Item = String> + '_ {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    let mut in_use = false;
    for c in code.chars() {
        current.push(c);
        if !in_use
            && current
                .trim_start()
                .trim_start_matches("pub")
                .trim_start()
                .starts_with("use ")
            || current.trim_start().starts_with("pub(") && current.contains(" use ")
        {
            in_use = true;
        }
        match c {
            '{' if in_use => depth += 1,
            '}' if in_use => depth = depth.saturating_sub(1),
            ';' | '{' | '}' if !in_use || depth == 0 => {
                out.push(std::mem::take(&mut current));
                in_use = false;
            }
            _ => {}
        }
    }
    out.push(current);
    out.into_iter()
}

/// The paths of a use tree: `a::{b, c::{d, e}}` gives a::b, a::c::d, a::c::e.
fn use_paths(tree: &str) -> Vec<Vec<String>> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let tree = tree.trim_end_matches(';');
    let mut out = Vec::new();
    expand(&[], tree, &mut out);
    out
}

fn expand(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
    let mut depth = 0;
    let mut start = 0;
    let mut items = Vec::new();
    for (at, c) in tree.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&tree[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    items.push(&tree[start..]);
    for item in items.into_iter().filter(|i| !i.is_empty()) {
        let item = item.split("as").next().unwrap_or(item);
        match item.find('{') {
            Some(open) => {
                let head = item[..open].trim_end_matches("::");
                let mut path = prefix.to_vec();
                path.extend(head.split("::").filter(|p| !p.is_empty()).map(String::from));
                expand(&path, &item[open + 1..item.len() - 1], out);
            }
            None => {
                let mut path = prefix.to_vec();
                path.extend(item.split("::").map(String::from));
                out.push(path);
            }
        }
    }
}

/// `crate::a::b` and `super::x` paths written inline.
fn inline_paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(start) {
            let at = from + at;
            from = at + start.len();
            if ident(code[..at].chars().last().as_ref()) {
                continue;
            }
            let path: String = code[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(
                path.split("::")
                    .filter(|p| !p.is_empty())
                    .map(String::from)
                    .collect(),
            );
        }
    }
    out
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "lib".into()
    } else {
        m.join("/")
    }
}

/// Strongly connected components of the import graph (Tarjan, iterative enough for
/// a few hundred files).
fn circles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct State<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<Module, usize>,
        low: BTreeMap<Module, usize>,
        stack: Vec<Module>,
        on_stack: BTreeSet<Module>,
        found: Vec<Vec<Module>>,
    }
    fn visit(s: &mut State, v: &Module) {
        let n = s.index.len();
        s.index.insert(v.clone(), n);
        s.low.insert(v.clone(), n);
        s.stack.push(v.clone());
        s.on_stack.insert(v.clone());
        for w in s.edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v.clone(), low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v.clone(), low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on_stack.remove(&w);
                let done = &w == v;
                component.push(w);
                if done {
                    break;
                }
            }
            s.found.push(component);
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.found.into_iter().filter(|c| c.len() > 1).collect()
}

#[test]
fn dependencies_point_down_the_layers() {
    let edges = read_tree().imports();
    // The reader must see the real imports, or every check below passes vacuously.
    let runner_run = vec!["runner".to_string(), "run".to_string()];
    assert!(
        edges[&runner_run]
            .iter()
            .any(|m| m.first().map(String::as_str) == Some("stages")),
        "the reader lost runner/run.rs's imports: {:?}",
        edges[&runner_run]
    );
    let upward: Vec<String> = edges
        .iter()
        .flat_map(|(from, to)| to.iter().map(move |to| (from, to)))
        .filter(|(from, to)| layer(to) > layer(from))
        .map(|(from, to)| format!("{} -> {}", name(from), name(to)))
        .collect();
    assert!(upward.is_empty(), "imports pointing up: {upward:#?}");
}

#[test]
fn the_engine_imports_nothing_above_it() {
    let edges = read_tree().imports();
    let above = ["pipeline", "stages", "runner", "commands", "cli", "report"];
    let wrong: Vec<String> = edges
        .iter()
        .filter(|(from, _)| from.first().map(String::as_str) == Some("engine"))
        .flat_map(|(from, to)| to.iter().map(move |to| (from, to)))
        .filter(|(_, to)| above.contains(&to.first().map(String::as_str).unwrap_or("")))
        .map(|(from, to)| format!("{} -> {}", name(from), name(to)))
        .collect();
    assert!(wrong.is_empty(), "the engine imports upward: {wrong:#?}");
}

#[test]
fn no_import_circle_spans_more_than_three_files() {
    let edges = read_tree().imports();
    let big: Vec<Vec<String>> = circles(&edges)
        .into_iter()
        .filter(|c| c.len() > 3)
        .map(|c| c.iter().map(name).collect())
        .collect();
    assert!(big.is_empty(), "import circles over 3 files: {big:#?}");
}

#[test]
fn alembic_types_stay_in_the_engine() {
    let tree = read_tree();
    let outside: Vec<String> = tree
        .files
        .iter()
        .filter(|(m, _)| !matches!(m.first().map(String::as_str), Some("engine" | "config")))
        .filter(|(_, path)| code_of(path).contains("alembic::"))
        .map(|(m, _)| name(m))
        .collect();
    assert!(
        outside.len() <= 3,
        "files outside the engine that name Alembic's types: {outside:?}"
    );
}
