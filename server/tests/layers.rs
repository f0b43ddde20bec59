//! The server's modules form layers: `lib.rs` lists them lowest first, one
//! comment line opening each layer, and a module may use only modules of the
//! layers before its own. This test reads the sources
//! and fails on any use of a later module (an import cycle starts there), and on
//! a module without a `//!` saying what it owns.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The top-level modules in `lib.rs` order, each with its layer's number.
fn layers(src: &Path) -> Vec<(String, usize)> {
    let lib = fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let mut layer = 0;
    let mut modules = Vec::new();
    for line in lib.lines().map(str::trim) {
        if line.starts_with("// ") {
            layer += 1;
        }
        let name = line
            .strip_prefix("pub mod ")
            .or_else(|| line.strip_prefix("mod "))
            .and_then(|rest| rest.strip_suffix(';'));
        if let Some(name) = name {
            modules.push((name.to_owned(), layer));
        }
    }
    modules
}

/// The files of module `name`: `name.rs`, or everything under `name/`.
fn files(src: &Path, name: &str) -> Vec<PathBuf> {
    let single = src.join(format!("{name}.rs"));
    if single.exists() {
        return vec![single];
    }
    let mut found = Vec::new();
    let mut dirs = vec![src.join(name)];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).expect("module directory") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    found
}

/// The source without its unit tests (they may reach anything).
fn without_tests(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests")
        .map_or(text, |at| &text[..at])
}

/// The top-level modules a source file names through `crate::`, in paths and
/// in grouped imports (`use crate::{a, b::c}`).
fn uses(text: &str, modules: &[String]) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let name = item.trim().split("::").next().unwrap_or("").trim();
                used.insert(name.to_owned());
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            used.insert(name);
        }
    }
    used.retain(|m| modules.contains(m));
    used
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let order = layers(&src);
    assert!(order.len() > 10, "lib.rs lists the modules: {order:?}");
    let names: Vec<String> = order.iter().map(|(name, _)| name.clone()).collect();
    let layer_of = |name: &str| order.iter().find(|(n, _)| n == name).map(|(_, l)| *l);
    let mut wrong = Vec::new();
    for (module, layer) in &order {
        for file in files(&src, module) {
            let text = fs::read_to_string(&file).expect("source");
            for used in uses(without_tests(&text), &names) {
                if used != *module && layer_of(&used).is_some_and(|l| l >= *layer) {
                    wrong.push(format!(
                        "{} uses `{used}`, not in a layer below `{module}`",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn every_module_says_what_it_owns() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (module, _) in layers(&src) {
        let single = src.join(format!("{module}.rs"));
        let root = if single.exists() {
            single
        } else {
            src.join(&module).join("mod.rs")
        };
        let text = fs::read_to_string(&root).expect("module root");
        assert!(
            text.trim_start().starts_with("//!"),
            "{} has no module documentation",
            root.display()
        );
    }
}

#[test]
fn the_check_sees_a_use_of_a_higher_layer() {
    let modules: Vec<String> = ["keyspace", "commands"].map(String::from).to_vec();
    let text = "use crate::{commands::Ctx, keyspace};\nfn f() { crate::commands::run(); }\n// crate::ignored\n";
    assert_eq!(
        uses(text, &modules),
        BTreeSet::from(["commands".to_owned(), "keyspace".to_owned()])
    );
}
