//! The modules' floors hold: every `crate::` path in `src/` names a module on
//! a lower floor than the file it is written in. The floors are the numbered
//! list in the doc comment of `src/lib.rs`, read from there.

use std::collections::BTreeMap;
use std::path::Path;

/// Module name -> floor (1 = bottom), from the numbered lines of `src/lib.rs`'s
/// doc comment: "//! 2. `http`, `options`, `shared`: ...".
fn floors(lib: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in lib.lines() {
        let Some(rest) = line.strip_prefix("//! ") else {
            continue;
        };
        let Some((num, rest)) = rest.split_once(". ") else {
            continue;
        };
        let Ok(floor) = num.parse::<usize>() else {
            continue;
        };
        let names = rest.split(':').next().unwrap_or("");
        for name in names.split(',') {
            let name = name.trim().trim_matches('`');
            assert!(!name.is_empty(), "an empty name on floor {floor}: {line}");
            let before = out.insert(name.to_string(), floor);
            assert!(before.is_none(), "`{name}` is on two floors");
        }
    }
    out
}

/// The first path segment after each `crate::`, with those of grouped imports
/// (`use crate::{a, b::C};` gives `a` and `b`).
fn crate_paths(src: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (at, _) in src.match_indices("crate::") {
        let rest = &src[at + "crate::".len()..];
        let Some(group) = rest.strip_prefix('{') else {
            out.push(ident(rest));
            continue;
        };
        let mut depth = 0;
        let mut item = String::new();
        for c in group.chars() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.push(ident(&item));
                    item.clear();
                    continue;
                }
                _ => {}
            }
            item.push(c);
        }
        if !item.trim().is_empty() {
            out.push(ident(&item));
        }
    }
    out
}

#[test]
fn each_file_imports_only_lower_floors() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let floor = floors(&lib);
    assert!(
        floor.len() > 1,
        "no floors found in src/lib.rs's doc comment"
    );
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.extension().is_some_and(|e| e == "rs") && name != "lib" && name != "main" {
            files.push((name, std::fs::read_to_string(&path).unwrap()));
        }
    }
    let mut wrong = Vec::new();
    for (name, _) in &files {
        if !floor.contains_key(name) {
            wrong.push(format!("src/{name}.rs is on no floor of src/lib.rs"));
        }
    }
    for name in floor.keys() {
        if !files.iter().any(|(f, _)| f == name) {
            wrong.push(format!("floor module `{name}` has no src/{name}.rs"));
        }
    }
    for (name, text) in &files {
        let Some(&mine) = floor.get(name) else {
            continue;
        };
        for used in crate_paths(text) {
            match floor.get(&used) {
                Some(&theirs) if theirs < mine => {}
                Some(&theirs) => wrong.push(format!(
                    "src/{name}.rs (floor {mine}) uses crate::{used} (floor {theirs})"
                )),
                None => wrong.push(format!(
                    "src/{name}.rs uses crate::{used}, which is no module on a floor"
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn paths_are_read() {
    let src = "use crate::a::B;\nuse crate::{c, d::{E, F}, self_};\nlet x = crate::g::h();";
    assert_eq!(crate_paths(src), ["a", "c", "d", "self_", "g"]);
    let lib = "//! text\n//!\n//! 1. `x`, `y`: the `Z` type.\n//!    more\n//! 2. `w`: top.";
    let got: Vec<(String, usize)> = floors(lib).into_iter().collect();
    let want = [("w", 2), ("x", 1), ("y", 1)].map(|(n, f)| (n.to_string(), f));
    assert_eq!(got, want);
}
