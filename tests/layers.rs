//! The layers of src/, as the list in src/lib.rs's opening comment names
//! them: a module may use modules of its own layer and of the layers below,
//! never one above, and no module may use one that uses it back, directly
//! or through others. What counts as a use is a `crate::`, `$crate::` or
//! `super::` path in the code (comments and string literals aside); a path
//! names the longest module it starts with.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, from the bottom, each with its top-level modules: from the
/// lines `//! - name: ...` of src/lib.rs, the modules in backquotes.
fn layers_in(lib: &str) -> Vec<(String, Vec<String>)> {
    let mut layers: Vec<(String, Vec<String>)> = Vec::new();
    for line in lib.lines().map_while(|l| l.strip_prefix("//!")) {
        let text = if let Some(item) = line.strip_prefix(" - ") {
            let Some((name, rest)) = item.split_once(':') else {
                continue;
            };
            layers.push((name.to_string(), Vec::new()));
            rest
        } else if line.starts_with("   ") {
            line // the item goes on
        } else {
            continue;
        };
        if let Some((_, modules)) = layers.last_mut() {
            modules.extend(text.split('`').skip(1).step_by(2).map(str::to_string));
        }
    }
    layers
}

#[test]
fn no_module_uses_a_higher_layer_or_one_that_uses_it_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    read_rs(&root.join("src"), root, &mut files);
    assert!(files.len() > 30, "found only {} files", files.len());
    let lib = &files
        .iter()
        .find(|(p, _)| p == "src/lib.rs")
        .expect("src/lib.rs")
        .1;
    let layers = layers_in(lib);
    assert!(layers.len() >= 7, "src/lib.rs lists only {layers:?}");
    let errors = check(&layers, &files);
    assert!(errors.is_empty(), "\n{}\n", errors.join("\n"));
}

/// The .rs files under `dir`: (path relative to `root`, text).
fn read_rs(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            read_rs(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let name = path.strip_prefix(root).unwrap().to_string_lossy();
            let text = std::fs::read_to_string(&path).expect("UTF-8 source");
            out.push((name.replace('\\', "/"), text));
        }
    }
}

/// What is wrong with `files` (path under src/, text) in `layers`: one
/// line each.
fn check(layers: &[(String, Vec<String>)], files: &[(String, String)]) -> Vec<String> {
    let modules: BTreeMap<String, &str> = files
        .iter()
        .filter_map(|(path, _)| module_of(path).map(|m| (m, path.as_str())))
        .collect();
    let mut errors = Vec::new();
    let mut uses: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
    for (path, text) in files {
        let Some(module) = module_of(path) else {
            continue; // lib.rs: declares the modules, uses none
        };
        let Some(layer) = layer_of(layers, &module) else {
            errors.push(format!(
                "{path}: module {module} is in no layer of src/lib.rs"
            ));
            continue;
        };
        for written in paths_in(&code_only(text)) {
            let Some(target) = resolve(&module, &written, &modules) else {
                continue;
            };
            if target == module {
                continue;
            }
            let target_layer = layer_of(layers, &target).unwrap_or(usize::MAX);
            if target_layer > layer {
                errors.push(format!(
                    "{path}: `{written}` reaches up from {module} ({}) to {target} ({})",
                    layer_name(layers, layer),
                    layer_name(layers, target_layer)
                ));
            }
            uses.entry(modules[&module])
                .or_default()
                .entry(target)
                .or_insert(written);
        }
    }
    errors.extend(cycles(&uses, &modules));
    errors
}

/// The module a file under src/ holds: `conn/shared.rs` is conn::shared,
/// `conn/mod.rs` is conn; None for lib.rs.
fn module_of(path: &str) -> Option<String> {
    let rel = path.strip_prefix("src/")?.strip_suffix(".rs")?;
    let rel = rel.strip_suffix("/mod").unwrap_or(rel);
    (rel != "lib").then(|| rel.replace('/', "::"))
}

fn layer_of(layers: &[(String, Vec<String>)], module: &str) -> Option<usize> {
    let top = module.split("::").next()?;
    layers
        .iter()
        .position(|(_, tops)| tops.iter().any(|t| t == top))
}

fn layer_name(layers: &[(String, Vec<String>)], layer: usize) -> &str {
    layers.get(layer).map_or("no layer", |(name, _)| name)
}

/// The module `written` (a `crate::` or `super::` path used in `module`)
/// names: the longest known module it starts with.
fn resolve(module: &str, written: &str, modules: &BTreeMap<String, &str>) -> Option<String> {
    let mut segments: Vec<&str> = Vec::new();
    let mut rest = written.split("::").peekable();
    match rest.next()? {
        "crate" => {}
        "super" => {
            // A file module's parent; `super` of `a::b` is `a`.
            segments.extend(module.split("::"));
            segments.pop();
            while rest.peek() == Some(&"super") {
                rest.next();
                segments.pop();
            }
        }
        _ => return None,
    }
    segments.extend(rest);
    (1..=segments.len())
        .rev()
        .map(|n| segments[..n].join("::"))
        .find(|m| modules.contains_key(m))
}

/// `text` with comments, string and character literals blanked out.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r'
            && matches!(next, Some('"') | Some('#'))
            && !ident_char(out.chars().last())
        {
            // r"..." or r#"..."#
            let hashes = chars[i + 1..].iter().take_while(|&&h| h == '#').count();
            let open = i + 1 + hashes;
            if chars.get(open) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            i = open + 1;
            while i < chars.len() {
                if chars[i] == '"' && chars[i + 1..].iter().take(hashes).all(|&h| h == '#') {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // a character literal; a lifetime has no closing quote
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_char(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// Every `crate::...` and `super::...` path in `code`, a `{...}` group
/// of a `use` spread into its paths.
fn paths_in(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(start).map(|p| p + from) {
            from = at + start.len();
            let before = at.checked_sub(1).map(|b| bytes[b] as char);
            if ident_char(before) || (before == Some(':') && start == "super::") {
                continue; // part of a longer name, or a super:: inside a path
            }
            let (paths, _) = path_at(code, at);
            found.extend(paths);
        }
    }
    found
}

/// The path(s) starting at byte `at` of `code`, and where they end.
fn path_at(code: &str, at: usize) -> (Vec<String>, usize) {
    let bytes = code.as_bytes();
    let mut end = at;
    while end < bytes.len()
        && (ident_char(Some(bytes[end] as char)) || code[end..].starts_with("::"))
    {
        end += if code[end..].starts_with("::") { 2 } else { 1 };
    }
    let head = code[at..end].trim_end_matches("::").to_string();
    if !code[..end].ends_with("::") || bytes.get(end) != Some(&b'{') {
        return (vec![head], end);
    }
    // crate::a::{b, c::d, e::{f, g}}
    let mut paths = Vec::new();
    let mut i = end + 1;
    loop {
        while i < bytes.len() && (bytes[i] as char).is_whitespace() || bytes.get(i) == Some(&b',') {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] == b'}' {
            return (paths, i + 1);
        }
        let (inner, next) = path_at(code, i);
        paths.extend(inner.into_iter().map(|p| format!("{head}::{p}")));
        // skip `as name` and anything else up to the next item
        i = next.max(i + 1);
        while i < bytes.len() && bytes[i] != b',' && bytes[i] != b'}' {
            i += 1;
        }
    }
}

/// Every cycle among the uses (file -> module it uses -> the path that
/// shows it), one line each, as the files that form it.
fn cycles(
    uses: &BTreeMap<&str, BTreeMap<String, String>>,
    modules: &BTreeMap<String, &str>,
) -> Vec<String> {
    let mut errors = Vec::new();
    let mut reported = BTreeSet::new();
    for &start in uses.keys() {
        // depth-first from `start`, looking for a way back to it
        let mut stack = vec![(start, vec![start])];
        let mut seen = BTreeSet::new();
        while let Some((file, trail)) = stack.pop() {
            for (target, written) in uses.get(file).into_iter().flatten() {
                let next = modules[target];
                if next == start {
                    let mut ring: Vec<&str> = trail.clone();
                    ring.sort();
                    if reported.insert(ring) {
                        let shown: Vec<String> = trail
                            .iter()
                            .map(|f| f.to_string())
                            .chain([start.to_string()])
                            .collect();
                        errors.push(format!(
                            "cycle: {} (the last step by `{written}`)",
                            shown.join(" -> ")
                        ));
                    }
                } else if seen.insert(next) {
                    let mut longer = trail.clone();
                    longer.push(next);
                    stack.push((next, longer));
                }
            }
        }
    }
    errors
}

#[cfg(test)]
mod the_check_itself {
    use super::*;

    /// A lib.rs that lists its layers as src/lib.rs does.
    const LIB: &str = "//! The crate.
//!
//! - values: `error`;
//! - connections: `conn` (endpoints and
//!   the `token`);
//! - services: `services`, each a module;
//! - client: `client`;
//! - C ABI: `ffi`.

pub mod error;
";

    fn check(list: &[(&str, &str)]) -> Vec<String> {
        super::check(&layers_in(LIB), &files(list))
    }

    #[test]
    fn reads_the_layers_from_the_list_in_lib_rs() {
        let layers = layers_in(LIB);
        let names: Vec<&str> = layers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["values", "connections", "services", "client", "C ABI"]
        );
        assert_eq!(layers[1].1, ["conn", "token"]);
        assert_eq!(layers[4].1, ["ffi"]);
    }

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn refuses_a_use_of_a_higher_layer() {
        let errors = check(&[
            ("src/conn/shared.rs", "use crate::services::kv::ROUTES;\n"),
            ("src/services/kv.rs", "pub static ROUTES: u8 = 0;\n"),
        ]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0]
                .starts_with("src/conn/shared.rs: `crate::services::kv::ROUTES` reaches up from conn::shared (connections) to services::kv (services)"),
            "{errors:?}"
        );
    }

    #[test]
    fn refuses_a_cycle_even_within_a_layer() {
        let errors = check(&[
            (
                "src/services/a.rs",
                "use crate::services::b::{B, other::{C}};\n",
            ),
            ("src/services/b.rs", "fn f() { super::c::g() }\n"),
            ("src/services/c.rs", "use crate::services::{a};\n"),
        ]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("cycle: src/services/"), "{errors:?}");
        for f in ["a.rs", "b.rs", "c.rs"] {
            assert!(errors[0].contains(f), "{errors:?}");
        }
    }

    #[test]
    fn refuses_a_module_of_no_layer() {
        let errors = check(&[("src/stray.rs", "")]);
        assert_eq!(
            errors,
            ["src/stray.rs: module stray is in no layer of src/lib.rs"]
        );
    }

    #[test]
    fn lets_through_downward_uses_comments_and_strings() {
        let errors = check(&[
            ("src/ffi.rs", "use crate::client::Client;\n"),
            ("src/client/mod.rs", "use crate::error::E; // crate::ffi\n"),
            ("src/error.rs", "/* crate::ffi */ const S: &str = \"crate::ffi\"; const R: &str = r#\"crate::ffi\"#; fn f<'a>(c: char) -> bool { c == '\"' }\n"),
        ]);
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn resolves_super_and_the_longest_module() {
        let modules: BTreeMap<String, &str> =
            [("conn", "a"), ("conn::shared", "b"), ("conn::token", "c")]
                .into_iter()
                .map(|(m, f)| (m.to_string(), f))
                .collect();
        let r = |from, path| resolve(from, path, &modules);
        assert_eq!(
            r("conn::token", "super::shared::Shared").as_deref(),
            Some("conn::shared")
        );
        assert_eq!(
            r("conn::token", "crate::conn::Shared").as_deref(),
            Some("conn")
        );
        assert_eq!(r("conn::token", "crate::proto::X"), None);
    }
}
