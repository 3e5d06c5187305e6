//! Checks that the C prototypes in xs-glue/evetcd.h agree with the
//! `extern "C"` functions the Rust core defines. A parameter added on one
//! side only still compiles and links; it would only crash at run time.
//!
//! Both sides are read as text, their types normalised into one small
//! vocabulary, and compared function by function. A type the mapping does
//! not know is an error, so a new one cannot slip through unchecked.

const HEADER_FILE: &str = "evetcd.h";
const HEADER: &str = include_str!("../xs-glue/evetcd.h");

/// The Rust files whose `extern "C"` functions make up the ABI. perl.rs
/// defines none today, but evetcd.h names it as part of the ABI.
const SOURCES: &[(&str, &str)] = &[
    ("ffi.rs", include_str!("ffi.rs")),
    ("perl.rs", include_str!("perl.rs")),
];

/// Exported Rust functions that need no prototype in evetcd.h, each with
/// the reason. Empty: the XS glue declares every one it has.
const RUST_ONLY: &[(&str, &str)] = &[];

/// C spellings, mapped into the shared vocabulary. `char` and `uint8_t`
/// are both bytes: the XS side passes Perl strings as either.
const C_TYPES: &[(&str, &str)] = &[
    ("void", "void"),
    ("char", "byte"),
    ("uint8_t", "byte"),
    ("int", "i32"),
    ("int32_t", "i32"),
    ("unsigned", "u32"),
    ("unsigned int", "u32"),
    ("uint32_t", "u32"),
    ("int64_t", "i64"),
    ("uint64_t", "u64"),
    ("size_t", "usize"),
    ("double", "f64"),
    ("evetcd_client", "client"),
    ("evetcd_config", "config"),
    ("evetcd_builder", "builder"),
];

/// Rust spellings (the last path segment), mapped the same way.
const RUST_TYPES: &[(&str, &str)] = &[
    ("c_void", "void"),
    ("u8", "byte"),
    ("c_char", "byte"),
    ("i32", "i32"),
    ("c_int", "i32"),
    ("u32", "u32"),
    ("c_uint", "u32"),
    ("i64", "i64"),
    ("u64", "u64"),
    ("usize", "usize"),
    ("f64", "f64"),
    ("c_double", "f64"),
    ("Client", "client"),
    ("EvetcdConfig", "config"),
    ("BuilderVtable", "builder"),
];

/// Words that end a C type rather than name a parameter (`unsigned int`).
const C_KEYWORDS: &[&str] = &[
    "void", "char", "short", "int", "long", "float", "double", "signed", "unsigned", "const",
    "volatile", "_Bool",
];

#[derive(Debug, PartialEq)]
enum Ty {
    Named(&'static str),
    /// `konst`: what it points at may not be written through it.
    Ptr {
        konst: bool,
        to: Box<Ty>,
    },
}

/// A type as written, for messages, and normalised, for comparing; the
/// error is the part of it the mapping does not know.
struct Type {
    text: String,
    ty: Result<Ty, String>,
}

struct Func {
    name: String,
    file: String,
    params: Vec<Type>,
    ret: Type,
}

/// Every disagreement between the header and the Rust sources, one line
/// each; empty when they match.
fn check(header: &str, sources: &[(&str, &str)], rust_only: &[(&str, &str)]) -> Vec<String> {
    let (c_funcs, mut errors) = parse_header(header);
    let mut rust_funcs = Vec::new();
    for (file, src) in sources {
        let (funcs, errs) = parse_rust(file, src);
        rust_funcs.extend(funcs);
        errors.extend(errs);
    }
    let files: Vec<&str> = sources.iter().map(|(file, _)| *file).collect();
    errors.extend(compare(&c_funcs, &rust_funcs, rust_only, &files.join(", ")));
    errors
}

fn compare(
    c_funcs: &[Func],
    rust_funcs: &[Func],
    rust_only: &[(&str, &str)],
    files: &str,
) -> Vec<String> {
    let mut errors = Vec::new();
    for f in c_funcs.iter().chain(rust_funcs) {
        unknown_types(f, &mut errors);
    }
    for c in c_funcs {
        let defs: Vec<&Func> = rust_funcs.iter().filter(|r| r.name == c.name).collect();
        match defs.as_slice() {
            [] => errors.push(format!(
                "{}: declared in {HEADER_FILE} but not defined as extern \"C\" in {files}",
                c.name
            )),
            [r] => compare_one(c, r, &mut errors),
            _ => errors.push(format!("{}: defined more than once in {files}", c.name)),
        }
    }
    for r in rust_funcs {
        let declared = c_funcs.iter().any(|c| c.name == r.name);
        if !declared && !rust_only.iter().any(|(name, _)| *name == r.name) {
            errors.push(format!(
                "{}: defined in {} but has no prototype in {HEADER_FILE} \
                 (add one, or list it in RUST_ONLY with the reason)",
                r.name, r.file
            ));
        }
    }
    // Keeps the allow-list from outliving what it excuses.
    for (name, _) in rust_only {
        if c_funcs.iter().any(|c| c.name == *name) {
            errors.push(format!(
                "{name}: in RUST_ONLY but declared in {HEADER_FILE}"
            ));
        } else if !rust_funcs.iter().any(|r| r.name == *name) {
            errors.push(format!("{name}: in RUST_ONLY but not defined in {files}"));
        }
    }
    errors
}

fn compare_one(c: &Func, r: &Func, errors: &mut Vec<String>) {
    if let (Ok(ct), Ok(rt)) = (&c.ret.ty, &r.ret.ty) {
        if ct != rt {
            errors.push(format!(
                "{}: returns {} in {HEADER_FILE} but {} in {}",
                c.name, c.ret.text, r.ret.text, r.file
            ));
        }
    }
    if c.params.len() != r.params.len() {
        // Past a count mismatch the positions no longer line up.
        errors.push(format!(
            "{}: {} parameters in {HEADER_FILE} but {} in {}",
            c.name,
            c.params.len(),
            r.params.len(),
            r.file
        ));
        return;
    }
    for (i, (cp, rp)) in c.params.iter().zip(&r.params).enumerate() {
        if let (Ok(ct), Ok(rt)) = (&cp.ty, &rp.ty) {
            if ct != rt {
                errors.push(format!(
                    "{}: parameter {} is {} in {HEADER_FILE} but {} in {}",
                    c.name,
                    i + 1,
                    cp.text,
                    rp.text,
                    r.file
                ));
            }
        }
    }
}

fn unknown_types(f: &Func, errors: &mut Vec<String>) {
    let lang = if f.file == HEADER_FILE { "C" } else { "Rust" };
    let positions = f
        .params
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("parameter {}", i + 1), p));
    for (at, t) in positions.chain([("return type".to_string(), &f.ret)]) {
        if let Err(unknown) = &t.ty {
            errors.push(format!(
                "{}: {at}: unknown {lang} type {unknown} in {}; add it to the mapping in abi_check.rs",
                f.name, f.file
            ));
        }
    }
}

// ---- C header ----

fn parse_header(src: &str) -> (Vec<Func>, Vec<String>) {
    let code = drop_preprocessor(&strip_comments(src, false));
    let mut funcs = Vec::new();
    let mut errors = Vec::new();
    let mut depth = 0;
    let mut stmt = String::new();
    // Split at top-level `;`, so a struct body stays one statement.
    for ch in code.chars() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ';' if depth == 0 => {
                match c_statement(&squash(&stmt)) {
                    Ok(Some(f)) => funcs.push(f),
                    Ok(None) => {}
                    Err(e) => errors.push(e),
                }
                stmt.clear();
                continue;
            }
            _ => {}
        }
        stmt.push(ch);
    }
    if !stmt.trim().is_empty() {
        errors.push(format!("{HEADER_FILE}: no `;` after `{}`", squash(&stmt)));
    }
    (funcs, errors)
}

/// A prototype, or None for the typedefs and enums between them.
fn c_statement(stmt: &str) -> Result<Option<Func>, String> {
    let first = stmt.split(' ').next().unwrap_or("");
    let is_type = matches!(first, "struct" | "enum" | "union");
    if first == "typedef" || (is_type && (stmt.contains('{') || !stmt.contains('('))) {
        return Ok(None);
    }
    let unreadable = || format!("{HEADER_FILE}: cannot read `{stmt};` as a function prototype");
    let stmt = stmt.strip_prefix("extern ").unwrap_or(stmt);
    let open = stmt.find('(').ok_or_else(unreadable)?;
    if stmt.contains('{') || matching_paren(stmt, open) != Some(stmt.len() - 1) {
        return Err(unreadable());
    }
    let head = stmt[..open].trim_end();
    let name_at = head.rfind(|c: char| !is_ident_char(c)).map_or(0, |i| i + 1);
    let (ret, name) = (head[..name_at].trim(), &head[name_at..]);
    if ret.is_empty() || !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return Err(unreadable());
    }
    let inner = stmt[open + 1..stmt.len() - 1].trim();
    let params = match inner {
        "" | "void" => Vec::new(),
        _ => split_top(inner).iter().map(|p| c_type(p, true)).collect(),
    };
    Ok(Some(Func {
        name: name.to_string(),
        file: HEADER_FILE.to_string(),
        params,
        ret: c_type(ret, false),
    }))
}

/// A C type; with `named`, a trailing parameter name is dropped first.
fn c_type(text: &str, named: bool) -> Type {
    let mut toks = c_tokens(text);
    if named && toks.len() > 1 {
        let last = toks[toks.len() - 1].as_str();
        let has_type = toks[..toks.len() - 1].iter().any(|t| t != "const");
        if last.starts_with(is_ident_char) && !C_KEYWORDS.contains(&last) && has_type {
            toks.pop();
        }
    }
    Type {
        text: render_c(&toks),
        ty: c_ty(&toks),
    }
}

fn c_ty(toks: &[String]) -> Result<Ty, String> {
    let unreadable = || format!("`{}`", render_c(toks));
    let named = |base: &[&str]| {
        let name = base.join(" ");
        lookup(C_TYPES, &name).ok_or(if name.is_empty() {
            unreadable()
        } else {
            format!("`{name}`")
        })
    };
    let mut base = Vec::new();
    let mut konst = false;
    let mut ty = None;
    // Left to right, a `const` qualifies what the next `*` points at.
    for t in toks {
        match t.as_str() {
            "const" => konst = true,
            "*" => {
                let to = match ty.take() {
                    Some(inner) => inner,
                    None => named(&base)?,
                };
                ty = Some(Ty::Ptr {
                    konst,
                    to: Box::new(to),
                });
                konst = false;
            }
            w if ty.is_none() && w.starts_with(is_ident_char) => base.push(w),
            _ => return Err(unreadable()),
        }
    }
    // A trailing `const` qualifies the parameter itself: no ABI meaning.
    match ty {
        Some(ty) => Ok(ty),
        None => named(&base),
    }
}

/// Words and `*`s; any other character is its own token (and unreadable).
fn c_tokens(text: &str) -> Vec<String> {
    let mut toks: Vec<String> = Vec::new();
    let mut in_word = false;
    for ch in text.chars() {
        if is_ident_char(ch) {
            if !in_word {
                toks.push(String::new());
            }
            toks.last_mut().unwrap().push(ch);
        } else if !ch.is_whitespace() {
            toks.push(ch.to_string());
        }
        in_word = is_ident_char(ch);
    }
    toks
}

/// Tokens back to the usual spelling: `const char *const *`.
fn render_c(toks: &[String]) -> String {
    let mut out = String::new();
    let mut prev_star = false;
    for t in toks {
        if !out.is_empty() && !prev_star {
            out.push(' ');
        }
        out.push_str(t);
        prev_star = t == "*";
    }
    out
}

/// Drops `#` lines, with their `\` continuations (the layout macros).
fn drop_preprocessor(code: &str) -> String {
    let mut out = String::new();
    let mut continued = false;
    for line in code.lines() {
        let directive = continued || line.trim_start().starts_with('#');
        continued = directive && line.trim_end().ends_with('\\');
        if !directive {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

// ---- Rust ----

fn parse_rust(file: &str, src: &str) -> (Vec<Func>, Vec<String>) {
    const MARK: &str = "extern \"C\"";
    let code = strip_comments(src, true);
    let mut funcs = Vec::new();
    let mut errors = Vec::new();
    for (at, _) in code.match_indices(MARK) {
        if code[..at].ends_with(is_ident_char) {
            continue;
        }
        // `extern "C" {` is an import block, `extern "C" fn(` a pointer type.
        let Some(rest) = code[at + MARK.len()..].trim_start().strip_prefix("fn") else {
            continue;
        };
        if !rest.starts_with(char::is_whitespace) {
            continue;
        }
        let rest = rest.trim_start();
        let name_len = rest.find(|c: char| !is_ident_char(c)).unwrap_or(rest.len());
        let name = &rest[..name_len];
        if name.is_empty() {
            continue;
        }
        let rest = rest[name_len..].trim_start();
        let Some(close) = rest
            .starts_with('(')
            .then(|| matching_paren(rest, 0))
            .flatten()
        else {
            errors.push(format!(
                "{file}: cannot read the parameters of extern \"C\" fn {name}"
            ));
            continue;
        };
        let params = split_top(&rest[1..close])
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| rust_type(after_colon(p)))
            .collect();
        let ret = match rest[close + 1..].trim_start().strip_prefix("->") {
            Some(r) => rust_type(&r[..r.find('{').unwrap_or(r.len())]),
            None => rust_type("()"),
        };
        funcs.push(Func {
            name: name.to_string(),
            file: file.to_string(),
            params,
            ret,
        });
    }
    (funcs, errors)
}

fn rust_type(text: &str) -> Type {
    let text = squash(text);
    Type {
        ty: rust_ty(&text),
        text,
    }
}

fn rust_ty(t: &str) -> Result<Ty, String> {
    for (prefix, konst) in [("*const", true), ("*mut", false)] {
        if let Some(rest) = t.strip_prefix(prefix) {
            if rest.starts_with([' ', '*']) {
                let to = Box::new(rust_ty(rest.trim_start())?);
                return Ok(Ty::Ptr { konst, to });
            }
        }
    }
    if t == "()" {
        return Ok(Ty::Named("void"));
    }
    let last = t.rsplit("::").next().unwrap_or(t);
    let is_path = t.chars().all(|c| is_ident_char(c) || c == ':');
    is_path
        .then(|| lookup(RUST_TYPES, last))
        .flatten()
        .ok_or_else(|| format!("`{t}`"))
}

/// The type in `name: Type` (a single colon, not a `::` path separator).
fn after_colon(param: &str) -> &str {
    let b = param.as_bytes();
    for i in 0..b.len() {
        let lone = b[i] == b':' && b.get(i + 1) != Some(&b':') && (i == 0 || b[i - 1] != b':');
        if lone {
            return &param[i + 1..];
        }
    }
    param
}

// ---- shared ----

fn lookup(table: &[(&str, &'static str)], name: &str) -> Option<Ty> {
    table
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| Ty::Named(v))
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Index of the `)` closing the `(` at `open`.
fn matching_paren(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0;
    for (i, ch) in s[open..].char_indices() {
        match ch {
            '(' => depth += 1,
            ')' if depth == 1 => return Some(open + i),
            ')' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// Splits a parameter list at the commas not nested in brackets.
fn split_top(s: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut depth = 0;
    let mut prev = ' ';
    for ch in s.chars() {
        match ch {
            '(' | '[' | '<' | '{' => depth += 1,
            '>' if prev == '-' => {} // the `->` of a fn pointer type
            ')' | ']' | '>' | '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(String::new());
                prev = ch;
                continue;
            }
            _ => {}
        }
        parts.last_mut().unwrap().push(ch);
        prev = ch;
    }
    parts.iter().map(|p| squash(p)).collect()
}

/// Source without comments, string and char literals kept intact. For Rust
/// (`rust`), block comments nest and `r#"..."#` strings are raw.
fn strip_comments(src: &str, rust: bool) -> String {
    let s: Vec<char> = src.chars().collect();
    let at = |i: usize| s.get(i).copied().unwrap_or('\0');
    let mut out = String::new();
    let mut i = 0;
    while i < s.len() {
        let start = i;
        match (s[i], at(i + 1)) {
            ('/', '/') => {
                while i < s.len() && s[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            ('/', '*') => {
                let mut depth = 0;
                while i < s.len() {
                    if s[i] == '/' && at(i + 1) == '*' && (rust || depth == 0) {
                        depth += 1;
                        i += 2;
                    } else if s[i] == '*' && at(i + 1) == '/' {
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
                continue;
            }
            ('r', '"' | '#') if rust && (i == 0 || !is_ident_char(s[i - 1]) || s[i - 1] == 'b') => {
                let hashes = s[i + 1..].iter().take_while(|&&c| c == '#').count();
                if at(i + 1 + hashes) == '"' {
                    i += hashes + 2;
                    while i < s.len()
                        && !(s[i] == '"' && s[i + 1..].iter().take(hashes).all(|&c| c == '#'))
                    {
                        i += 1;
                    }
                    i += hashes + 1;
                } else {
                    i += 1;
                }
            }
            ('"', _) => {
                i += 1;
                while i < s.len() && s[i] != '"' {
                    i += if s[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            // A char literal; in Rust a `'` without a closing one is a lifetime.
            ('\'', '\\') => {
                i += 3;
                while i < s.len() && s[i] != '\'' {
                    i += 1;
                }
                i += 1;
            }
            ('\'', _) if at(i + 2) == '\'' => i += 3,
            _ => i += 1,
        }
        out.extend(&s[start..i.min(s.len())]);
    }
    out
}

#[test]
fn evetcd_h_matches_the_rust_definitions() {
    let errors = check(HEADER, SOURCES, RUST_ONLY);
    assert!(
        errors.is_empty(),
        "evetcd.h and the Rust ABI disagree:\n{}",
        errors.join("\n")
    );
    // Guards against a parser that silently finds nothing.
    assert!(
        !parse_header(HEADER).0.is_empty(),
        "no prototypes found in evetcd.h"
    );
}

/// A new file exporting functions must be added to SOURCES, or its
/// functions would escape the check.
#[test]
fn every_file_exporting_functions_is_checked() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        // This file's own test snippets are not exports.
        if !name.ends_with(".rs") || name == "abi_check.rs" {
            continue;
        }
        let (funcs, _) = parse_rust(&name, &std::fs::read_to_string(&path).unwrap());
        let listed = SOURCES.iter().any(|(file, _)| *file == name);
        assert!(
            funcs.is_empty() || listed,
            "src/{name} defines extern \"C\" functions but is not in SOURCES"
        );
    }
}

#[test]
fn mismatches_are_reported() {
    // Exercises the parsers too: comments, a multi-line macro, a struct of
    // function pointers, multi-line parameter lists, fn pointer types.
    let header = r#"
/* int evetcd_gone(void); is only a comment */
#define EVETCD_X(T) \
    sizeof(T), offsetof(T, a)
typedef struct evetcd_client evetcd_client;
typedef struct {
    void *ctx;
    void *(*hv_new)(void *ctx);
} evetcd_builder;
enum { EVETCD_A = 1 };
int evetcd_open(const evetcd_client *c, uint64_t id, const char *const *names,
                size_t n, int flag); // trailing comment
void evetcd_close(evetcd_client *c);
const char *evetcd_name(size_t i, size_t *len);
"#;
    let rust = r#"
/// Not a definition: pub unsafe extern "C" fn evetcd_gone() {}
pub struct V {
    pub hv_new: unsafe extern "C" fn(*mut c_void) -> *mut c_void,
}
#[no_mangle]
pub unsafe extern "C" fn evetcd_open(
    c: *const Client,
    id: u64,
    names: *const *const u8,
    n: usize,
    flag: c_int,
) -> c_int {
    0
}
#[no_mangle]
pub extern "C" fn evetcd_close(c: *mut Client) {}
#[no_mangle]
pub unsafe extern "C" fn evetcd_name(i: usize, len: *mut usize) -> *const std::ffi::c_char {
    std::ptr::null()
}
"#;
    let run = |header: &str, rust: &str| check(header, &[("ffi.rs", rust)], &[]);
    let edit = |text: &str, from: &str, to: &str| {
        assert!(text.contains(from), "snippet lacks `{from}`");
        text.replace(from, to)
    };
    assert_eq!(run(header, rust), Vec::<String>::new());

    let cases = [
        // (a) an extra parameter
        (
            edit(header, "int flag)", "int flag, int extra)"),
            rust.to_string(),
            "evetcd_open: 6 parameters in evetcd.h but 5 in ffi.rs",
        ),
        // (b) a different type
        (
            header.to_string(),
            edit(rust, "flag: c_int", "flag: u64"),
            "evetcd_open: parameter 5 is int in evetcd.h but u64 in ffi.rs",
        ),
        // (c) constness, of the pointer and of what it points at
        (
            header.to_string(),
            edit(rust, "c: *const Client", "c: *mut Client"),
            "evetcd_open: parameter 1 is const evetcd_client * in evetcd.h but *mut Client in ffi.rs",
        ),
        (
            header.to_string(),
            edit(rust, "*const *const u8", "*const *mut u8"),
            "evetcd_open: parameter 3 is const char *const * in evetcd.h but *const *mut u8 in ffi.rs",
        ),
        // (d) a prototype with no definition
        (
            header.to_string(),
            edit(rust, "pub extern \"C\" fn evetcd_close", "pub fn evetcd_close"),
            "evetcd_close: declared in evetcd.h but not defined as extern \"C\" in ffi.rs",
        ),
        // a definition with no prototype
        (
            edit(header, "void evetcd_close(evetcd_client *c);", ""),
            rust.to_string(),
            "evetcd_close: defined in ffi.rs but has no prototype in evetcd.h \
             (add one, or list it in RUST_ONLY with the reason)",
        ),
        // the return type
        (
            header.to_string(),
            edit(rust, "fn evetcd_close(c: *mut Client)", "fn evetcd_close(c: *mut Client) -> c_int"),
            "evetcd_close: returns void in evetcd.h but c_int in ffi.rs",
        ),
        // types the mapping does not know, on either side
        (
            edit(header, "size_t n,", "long n,"),
            rust.to_string(),
            "evetcd_open: parameter 4: unknown C type `long` in evetcd.h; \
             add it to the mapping in abi_check.rs",
        ),
        (
            header.to_string(),
            edit(rust, "len: *mut usize", "len: *mut Option<usize>"),
            "evetcd_name: parameter 2: unknown Rust type `Option<usize>` in ffi.rs; \
             add it to the mapping in abi_check.rs",
        ),
    ];
    for (header, rust, expected) in cases {
        assert_eq!(run(&header, &rust), vec![expected.to_string()]);
    }

    // An allowed Rust-only function passes; a stale allowance does not.
    let no_close = edit(header, "void evetcd_close(evetcd_client *c);", "");
    let allowed = [("evetcd_close", "called only from Rust tests")];
    assert_eq!(
        check(&no_close, &[("ffi.rs", rust)], &allowed),
        Vec::<String>::new()
    );
    assert_eq!(
        check(header, &[("ffi.rs", rust)], &allowed),
        vec!["evetcd_close: in RUST_ONLY but declared in evetcd.h".to_string()]
    );
}
