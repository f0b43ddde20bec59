//! Redis 7 functions: libraries of Lua code (`FUNCTION LOAD`) whose
//! `redis.register_function` calls name the functions `FCALL` runs. The
//! registry keeps each library's code and what it registered; workers load
//! a library into their own interpreter on its first call there.

use std::collections::BTreeMap;

use ahash::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::RwLock;

use super::registry::ScriptFlags;
use crate::keyspace::{put_bytes, seal, take_bytes, unseal};

/// The only engine.
pub const ENGINE: &str = "LUA";

/// A function a library registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionInfo {
    /// Its name (`FCALL name`).
    pub name: String,
    /// `description`, if given.
    pub description: Option<String>,
    /// `flags`.
    pub flags: ScriptFlags,
}

/// A loaded library.
#[derive(Debug)]
pub struct Library {
    /// `#!lua name=<name>`.
    pub name: String,
    /// Its whole code, header included.
    pub code: Arc<[u8]>,
    /// Unique per load: a worker that loaded an older version loads again.
    pub id: u64,
    /// What it registered, in registration order.
    pub functions: Vec<FunctionInfo>,
}

/// Reads a library's `#!lua name=<name>` header: the name, and where the
/// code starts (at the header's line feed, keeping line numbers). Errors
/// are Redis's texts.
pub fn parse_header(code: &[u8]) -> Result<(String, usize), String> {
    if !code.starts_with(b"#!") {
        return Err("Missing library metadata".into());
    }
    let end = code
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("Invalid library metadata")?;
    let line = String::from_utf8_lossy(&code[..end]);
    let mut parts = line.split_ascii_whitespace();
    let engine = parts.next().unwrap_or("#!").trim_start_matches("#!");
    let mut name = None;
    for part in parts {
        match part.strip_prefix("name=") {
            Some(_) if name.is_some() => {
                return Err("Invalid metadata value, name argument was given multiple times".into())
            }
            Some(value) => name = Some(value.to_owned()),
            None => return Err(format!("Invalid metadata value given: {part}")),
        }
    }
    let name = name.ok_or("Library name was not given")?;
    if !valid_name(&name) {
        return Err("Library names can only contain letters, numbers, or underscores(_) and must be at least one character long".into());
    }
    if !engine.eq_ignore_ascii_case(ENGINE) {
        return Err(format!("Engine '{engine}' not found"));
    }
    Ok((name, end))
}

/// Letters, digits and underscores, at least one (library and function
/// names).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// How `FUNCTION RESTORE` treats the libraries already loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestorePolicy {
    /// Drop them all first.
    Flush,
    /// Keep them; a name collision fails the whole restore.
    Append,
    /// Libraries of the same name are replaced.
    Replace,
}

#[derive(Debug, Default)]
struct Libraries {
    /// By name, in name order (`FUNCTION LIST`, `FUNCTION DUMP`).
    libraries: BTreeMap<String, Arc<Library>>,
    /// Function name -> its library and index there.
    functions: HashMap<String, (Arc<Library>, usize)>,
}

impl Libraries {
    /// Why `library` cannot join (a library or function of the same name),
    /// `replacing` the library of its name.
    fn conflict(&self, library: &Library, replacing: bool) -> Option<String> {
        if !replacing && self.libraries.contains_key(&library.name) {
            return Some(format!("Library '{}' already exists", library.name));
        }
        library.functions.iter().find_map(|function| {
            let (owner, _) = self.functions.get(&function.name)?;
            (owner.name != library.name)
                .then(|| format!("Function {} already exists", function.name))
        })
    }

    fn remove(&mut self, name: &str) -> Option<Arc<Library>> {
        let library = self.libraries.remove(name)?;
        for function in &library.functions {
            self.functions.remove(&function.name);
        }
        Some(library)
    }

    fn insert(&mut self, library: Arc<Library>) {
        self.remove(&library.name);
        for (i, function) in library.functions.iter().enumerate() {
            self.functions
                .insert(function.name.clone(), (library.clone(), i));
        }
        self.libraries.insert(library.name.clone(), library);
    }
}

/// Every library this node has (`Shared::functions`).
#[derive(Debug, Default)]
pub struct Functions {
    inner: RwLock<Libraries>,
    ids: AtomicU64,
}

impl Functions {
    /// A fresh library id.
    pub fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Relaxed) + 1
    }

    /// The function `name`: its library and its index there.
    pub fn find(&self, name: &str) -> Option<(Arc<Library>, usize)> {
        self.inner.read().functions.get(name).cloned()
    }

    /// Adds `library` (`replace`: over one of the same name).
    pub fn add(&self, library: Library, replace: bool) -> Result<(), String> {
        let mut inner = self.inner.write();
        if let Some(conflict) = inner.conflict(&library, replace) {
            return Err(conflict);
        }
        inner.insert(Arc::new(library));
        Ok(())
    }

    /// Installs `libraries` as `FUNCTION RESTORE` does: all or none.
    pub fn restore(&self, libraries: Vec<Library>, policy: RestorePolicy) -> Result<(), String> {
        let mut inner = self.inner.write();
        let mut next = match policy {
            RestorePolicy::Flush => Libraries::default(),
            _ => Libraries {
                libraries: inner.libraries.clone(),
                functions: inner.functions.clone(),
            },
        };
        for library in libraries {
            if let Some(conflict) = next.conflict(&library, policy == RestorePolicy::Replace) {
                return Err(conflict);
            }
            next.insert(Arc::new(library));
        }
        *inner = next;
        Ok(())
    }

    /// Deletes library `name`; false if there is none.
    pub fn delete(&self, name: &str) -> bool {
        self.inner.write().remove(name).is_some()
    }

    /// Deletes every library.
    pub fn flush(&self) {
        *self.inner.write() = Libraries::default();
    }

    /// Every library, by name.
    pub fn list(&self) -> Vec<Arc<Library>> {
        self.inner.read().libraries.values().cloned().collect()
    }

    /// Libraries and functions loaded (`FUNCTION STATS`).
    pub fn counts(&self) -> (usize, usize) {
        let inner = self.inner.read();
        (inner.libraries.len(), inner.functions.len())
    }

    /// Every library's code as one payload (`FUNCTION DUMP`).
    pub fn dump(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for library in self.inner.read().libraries.values() {
            put_bytes(&mut out, &library.code);
        }
        seal(&mut out);
        out
    }
}

/// The libraries' code in a payload made by [`Functions::dump`].
pub fn read_dump(payload: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut body = unseal(payload).map_err(|e| e.to_string())?;
    let mut codes = Vec::new();
    while !body.is_empty() {
        let code = take_bytes(&mut body).ok_or("failed loading the given functions payload")?;
        codes.push(code);
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn library(name: &str, functions: &[&str]) -> Library {
        Library {
            name: name.into(),
            code: format!("#!lua name={name}\n").into_bytes().into(),
            id: 0,
            functions: functions
                .iter()
                .map(|f| FunctionInfo {
                    name: (*f).into(),
                    description: None,
                    flags: ScriptFlags::default(),
                })
                .collect(),
        }
    }

    #[test]
    fn headers_name_the_library_or_say_what_is_wrong() {
        assert_eq!(
            parse_header(b"#!lua name=mylib\nreturn").unwrap(),
            ("mylib".into(), 16)
        );
        assert_eq!(parse_header(b"#!LUA name=x\n").unwrap().0, "x");
        assert_eq!(
            parse_header(b"return 1").unwrap_err(),
            "Missing library metadata"
        );
        assert_eq!(
            parse_header(b"#!lua name=x").unwrap_err(),
            "Invalid library metadata"
        );
        assert_eq!(
            parse_header(b"#!lua\n").unwrap_err(),
            "Library name was not given"
        );
        assert_eq!(
            parse_header(b"#!lua foo=bar\n").unwrap_err(),
            "Invalid metadata value given: foo=bar"
        );
        assert_eq!(
            parse_header(b"#!js name=x\n").unwrap_err(),
            "Engine 'js' not found"
        );
        assert!(parse_header(b"#!lua name=a-b\n")
            .unwrap_err()
            .starts_with("Library names can only"));
    }

    #[test]
    fn names_never_clash_and_restores_are_all_or_nothing() {
        let functions = Functions::default();
        functions.add(library("a", &["f1", "f2"]), false).unwrap();
        assert_eq!(
            functions.add(library("a", &["g"]), false).unwrap_err(),
            "Library 'a' already exists"
        );
        assert_eq!(
            functions.add(library("b", &["f1"]), false).unwrap_err(),
            "Function f1 already exists"
        );
        // Replacing a library frees its old functions' names.
        functions.add(library("a", &["g"]), true).unwrap();
        assert!(functions.find("f1").is_none());
        functions.add(library("b", &["f1"]), false).unwrap();
        assert_eq!(functions.counts(), (2, 2));
        let dump = functions.dump();
        let codes = read_dump(&dump).unwrap();
        assert_eq!(codes, [b"#!lua name=a\n".as_slice(), b"#!lua name=b\n"]);
        assert!(read_dump(&dump[1..]).is_err());
        let err = functions.restore(
            vec![library("c", &["h"]), library("a", &["x"])],
            RestorePolicy::Append,
        );
        assert_eq!(err.unwrap_err(), "Library 'a' already exists");
        assert!(
            functions.find("h").is_none(),
            "nothing of a failed restore stays"
        );
        functions
            .restore(vec![library("a", &["x"])], RestorePolicy::Replace)
            .unwrap();
        assert!(functions.find("x").is_some() && functions.find("g").is_none());
        functions
            .restore(vec![library("z", &["zz"])], RestorePolicy::Flush)
            .unwrap();
        assert_eq!(functions.counts(), (1, 1));
        assert!(functions.delete("z"));
        assert!(!functions.delete("z"));
    }
}
