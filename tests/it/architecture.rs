//! The shape of the source, checked so it cannot drift: no file under `src/`
//! longer than a newcomer can hold in mind, and dependencies between files
//! that point one way (no cycles).
//!
//! The dependency graph is read from the source with `syn` rather than with
//! `cargo modules` (which builds rust-analyzer and would add minutes to every
//! CI run). A file depends on another when its non-test code names an item the
//! other defines: `use` lines only make names; a name counts where the code
//! uses it, and a path through a re-export (`pub use run::start_run`) leads to
//! the file that defines the item, not to the module that re-exports it. A
//! module and its files are therefore free to re-export their children.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;

/// The most lines a source file may have (test modules in their own files
/// are not counted).
const MAX_LINES: usize = 600;

#[test]
fn no_source_file_is_longer_than_600_lines() {
    let long: Vec<String> = source_files()
        .into_iter()
        .filter(|f| !is_test_file(f))
        .filter_map(|f| {
            let lines = std::fs::read_to_string(&f).unwrap().lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these files (at most {MAX_LINES} lines each): {long:?}"
    );
}

#[test]
fn dependencies_between_source_files_have_no_cycles() {
    let crate_ = Crate::read();
    let graph = crate_.dependencies();
    let cycles = cycles(&graph);
    let explain = |cycle: &Vec<String>| {
        cycle
            .windows(2)
            .map(|pair| {
                let names: Vec<&str> = graph[&pair[0]][&pair[1]]
                    .iter()
                    .map(String::as_str)
                    .collect();
                format!("{} -> {} ({})", pair[0], pair[1], names.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    assert!(
        cycles.is_empty(),
        "files that depend on each other (a -> b (name): a uses an item b defines):\n{}",
        cycles.iter().map(explain).collect::<Vec<_>>().join("\n")
    );
}

/// The checker finds what it is meant to find: a cycle made of a re-export
/// and a use, and none where a parent only re-exports its child.
#[test]
fn the_cycle_check_sees_a_cycle_through_a_re_export() {
    let files = [
        ("lib", "pub mod a; pub mod b;"),
        ("a", "mod inner; pub use inner::Thing; pub struct Top;"),
        ("a/inner", "pub struct Thing(crate::b::Other);"),
        ("b", "pub struct Other; pub fn f(_: crate::a::Thing) {}"),
    ];
    let graph = Crate::from_sources(&files).dependencies();
    assert_eq!(
        cycles(&graph),
        vec![vec!["a/inner".to_string(), "b".into(), "a/inner".into()]]
    );

    let files = [
        ("lib", "pub mod a; pub mod b;"),
        ("a", "mod inner; pub use inner::Thing; pub struct Top;"),
        ("a/inner", "pub struct Thing(crate::b::Other);"),
        ("b", "pub struct Other; pub fn f(_: crate::a::Top) {}"),
    ];
    let graph = Crate::from_sources(&files).dependencies();
    assert_eq!(cycles(&graph), Vec::<Vec<String>>::new());
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn source_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&src_dir(), &mut files);
    files.sort();
    files
}

/// Unit tests kept beside their module (`foo/tests.rs`, `foo/tests/…`).
fn is_test_file(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == "tests")
        || path.file_stem().is_some_and(|s| s == "tests")
}

/// A module's name inside the crate: `store/sql/runs`, `lib` for the root.
type ModPath = String;

/// File -> the files it depends on -> the names that make it.
type Graph = BTreeMap<ModPath, BTreeMap<ModPath, BTreeSet<String>>>;

#[derive(Default)]
struct Module {
    /// Names of the items it defines (types, functions, traits, macros…).
    defines: BTreeSet<String>,
    /// Names its `use` lines bring in, and the absolute path each stands for.
    imports: HashMap<String, Vec<String>>,
    /// Modules whose every public name it imports (`use x::*`).
    globs: Vec<Vec<String>>,
    /// Paths its code names (not counting its `use` lines), as written.
    paths: Vec<Vec<String>>,
}

struct Crate {
    modules: BTreeMap<ModPath, Module>,
}

impl Crate {
    fn read() -> Crate {
        let src = src_dir();
        let sources: Vec<(String, String)> = source_files()
            .into_iter()
            .filter(|f| !is_test_file(f) && f.file_name().is_some_and(|n| n != "main.rs"))
            .map(|f| {
                let rel = f.strip_prefix(&src).unwrap().with_extension("");
                let mut name = rel.to_string_lossy().replace('\\', "/");
                if let Some(parent) = name.strip_suffix("/mod") {
                    name = parent.to_string();
                }
                (name, std::fs::read_to_string(&f).unwrap())
            })
            .collect();
        let refs: Vec<(&str, &str)> = sources
            .iter()
            .map(|(n, s)| (n.as_str(), s.as_str()))
            .collect();
        Crate::from_sources(&refs)
    }

    fn from_sources(sources: &[(&str, &str)]) -> Crate {
        let modules = sources
            .iter()
            .map(|(name, text)| {
                let file = syn::parse_file(text)
                    .unwrap_or_else(|e| panic!("src/{name}.rs does not parse: {e}"));
                (name.to_string(), Module::read(name, &file.items))
            })
            .collect();
        Crate { modules }
    }

    /// Which files each file's code depends on (itself left out), each with
    /// the names that make it depend on it.
    fn dependencies(&self) -> Graph {
        let mut graph = BTreeMap::new();
        for (name, module) in &self.modules {
            let mut targets = BTreeMap::new();
            for path in &module.paths {
                if let Some(absolute) = self.absolute(name, module, path) {
                    let target = self.resolve(&absolute, 0);
                    if &target != name {
                        targets
                            .entry(target)
                            .or_insert_with(BTreeSet::new)
                            .insert(path.join("::"));
                    }
                }
            }
            graph.insert(name.clone(), targets);
        }
        graph
    }

    /// A path as written in `module`, made absolute from the crate root
    /// (without `crate`); `None` for names of other crates and local ones.
    fn absolute(&self, name: &str, module: &Module, path: &[String]) -> Option<Vec<String>> {
        let here = module_segments(name);
        let (first, rest) = path.split_first()?;
        // Alone, a name counts only if a `use` brought it in: `pub(super)`
        // and a variable named like a module are not uses.
        if rest.is_empty() && !module.imports.contains_key(first) {
            return None;
        }
        let mut base = match first.as_str() {
            "crate" => Vec::new(),
            "self" => here.clone(),
            "super" => {
                let mut up = here.clone();
                up.pop();
                let mut rest = rest;
                while rest.first().is_some_and(|s| s == "super") {
                    up.pop();
                    rest = &rest[1..];
                }
                up.extend(rest.iter().cloned());
                return Some(up);
            }
            _ => {
                if let Some(target) = module.imports.get(first) {
                    let mut full = target.clone();
                    full.extend(rest.iter().cloned());
                    return Some(full);
                }
                let mut child = here.clone();
                child.push(first.clone());
                if self.modules.contains_key(&mod_name(&child)) {
                    child.extend(rest.iter().cloned());
                    return Some(child);
                }
                return None;
            }
        };
        base.extend(rest.iter().cloned());
        Some(base)
    }

    /// The file that defines what an absolute path names, following re-exports.
    fn resolve(&self, path: &[String], depth: usize) -> ModPath {
        let mut current: Vec<String> = Vec::new();
        for (i, segment) in path.iter().enumerate() {
            let mut child = current.clone();
            child.push(segment.clone());
            if self.modules.contains_key(&mod_name(&child)) {
                current = child;
                continue;
            }
            let module = &self.modules[&mod_name(&current)];
            if module.defines.contains(segment) || depth > 16 {
                break;
            }
            if let Some(target) = module.imports.get(segment) {
                let mut full = target.clone();
                full.extend(path[i + 1..].iter().cloned());
                return self.resolve(&full, depth + 1);
            }
            for glob in &module.globs {
                let mut full = glob.clone();
                full.extend(path[i..].iter().cloned());
                let target = self.resolve(&full, depth + 1);
                if self.modules[&target].defines.contains(segment) {
                    return target;
                }
            }
            break;
        }
        mod_name(&current)
    }
}

fn module_segments(name: &str) -> Vec<String> {
    if name == "lib" {
        Vec::new()
    } else {
        name.split('/').map(str::to_string).collect()
    }
}

fn mod_name(segments: &[String]) -> ModPath {
    if segments.is_empty() {
        "lib".into()
    } else {
        segments.join("/")
    }
}

impl Module {
    fn read(name: &str, items: &[syn::Item]) -> Module {
        let mut module = Module::default();
        let here = module_segments(name);
        for item in items {
            if is_cfg_test(item) {
                continue;
            }
            match item {
                syn::Item::Use(u) => module.add_use(&here, &[], &u.tree),
                syn::Item::Mod(m) => {
                    // An inline module's items count as this file's.
                    if let Some((_, inner)) = &m.content {
                        let nested = Module::read(name, inner);
                        module.merge(nested);
                    }
                }
                other => {
                    if let Some(ident) = item_name(other) {
                        module.defines.insert(ident);
                    }
                    paths_in(other.to_token_stream(), &mut module.paths);
                }
            }
        }
        module
    }

    fn merge(&mut self, other: Module) {
        self.defines.extend(other.defines);
        self.imports.extend(other.imports);
        self.globs.extend(other.globs);
        self.paths.extend(other.paths);
    }

    /// Records the names a `use` tree brings in. Paths starting with a child
    /// module or `self`/`super` are made absolute; other crates' are dropped.
    fn add_use(&mut self, here: &[String], prefix: &[String], tree: &syn::UseTree) {
        let absolute = |prefix: &[String], last: &str| -> Option<Vec<String>> {
            let mut full: Vec<String> = prefix.to_vec();
            full.push(last.to_string());
            match full[0].as_str() {
                "crate" => Some(full[1..].to_vec()),
                "self" => Some(
                    here.iter()
                        .cloned()
                        .chain(full[1..].iter().cloned())
                        .collect(),
                ),
                "super" => {
                    let mut up = here.to_vec();
                    let mut rest = &full[..];
                    while rest.first().is_some_and(|s| s == "super") {
                        up.pop();
                        rest = &rest[1..];
                    }
                    up.extend(rest.iter().cloned());
                    Some(up)
                }
                // A child module (`use outbox::Foo`) or another crate; which
                // one is settled when the path is resolved.
                _ => Some(here.iter().cloned().chain(full).collect()),
            }
        };
        match tree {
            syn::UseTree::Path(p) => {
                let mut prefix = prefix.to_vec();
                prefix.push(p.ident.to_string());
                self.add_use(here, &prefix, &p.tree);
            }
            syn::UseTree::Name(n) => {
                let name = n.ident.to_string();
                if name == "self" {
                    if let Some((last, init)) = prefix.split_last() {
                        if let Some(path) = absolute(init, last) {
                            self.imports.insert(last.clone(), path);
                        }
                    }
                } else if let Some(path) = absolute(prefix, &name) {
                    self.imports.insert(name, path);
                }
            }
            syn::UseTree::Rename(r) => {
                if let Some(path) = absolute(prefix, &r.ident.to_string()) {
                    self.imports.insert(r.rename.to_string(), path);
                }
            }
            syn::UseTree::Glob(_) => {
                if let Some((last, init)) = prefix.split_last() {
                    if let Some(path) = absolute(init, last) {
                        self.globs.push(path);
                    }
                }
            }
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.add_use(here, prefix, tree);
                }
            }
        }
    }
}

fn is_cfg_test(item: &syn::Item) -> bool {
    let attrs = match item {
        syn::Item::Mod(m) => &m.attrs,
        syn::Item::Fn(f) => &f.attrs,
        syn::Item::Use(u) => &u.attrs,
        syn::Item::Impl(i) => &i.attrs,
        _ => return false,
    };
    attrs
        .iter()
        .any(|a| a.path().is_ident("cfg") && a.meta.to_token_stream().to_string().contains("test"))
}

fn item_name(item: &syn::Item) -> Option<String> {
    Some(match item {
        syn::Item::Const(i) => i.ident.to_string(),
        syn::Item::Enum(i) => i.ident.to_string(),
        syn::Item::Fn(i) => i.sig.ident.to_string(),
        syn::Item::Macro(i) => match &i.ident {
            Some(ident) => ident.to_string(),
            // A macro call at item level (`vocabulary!(Name { … })`) defines
            // the type it names first.
            None => i.mac.tokens.clone().into_iter().find_map(|t| match t {
                TokenTree::Ident(id) => Some(id.to_string()),
                _ => None,
            })?,
        },
        syn::Item::Static(i) => i.ident.to_string(),
        syn::Item::Struct(i) => i.ident.to_string(),
        syn::Item::Trait(i) => i.ident.to_string(),
        syn::Item::Type(i) => i.ident.to_string(),
        syn::Item::Union(i) => i.ident.to_string(),
        _ => return None,
    })
}

/// Every `a::b::c` and lone identifier in the tokens, macro bodies included
/// (the store's SQL is written inside `on_pool!`). Lone identifiers matter for
/// names brought in by `use`.
fn paths_in(tokens: TokenStream, out: &mut Vec<Vec<String>>) {
    let mut current: Vec<String> = Vec::new();
    let mut colons = 0;
    let flush = |current: &mut Vec<String>, out: &mut Vec<Vec<String>>| {
        if !current.is_empty() {
            out.push(std::mem::take(current));
        }
    };
    for token in tokens {
        match token {
            TokenTree::Ident(ident) => {
                if colons == 2 && !current.is_empty() {
                    current.push(ident.to_string());
                } else {
                    flush(&mut current, out);
                    current.push(ident.to_string());
                }
                colons = 0;
            }
            TokenTree::Punct(p) if p.as_char() == ':' => colons += 1,
            TokenTree::Group(g) => {
                flush(&mut current, out);
                colons = 0;
                paths_in(g.stream(), out);
            }
            _ => {
                flush(&mut current, out);
                colons = 0;
            }
        }
    }
    flush(&mut current, out);
}

/// The graph's cycles, each once, as `a -> b -> … -> a`: one per strongly
/// connected component, which is enough to say where to look.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    for start in graph.keys() {
        if done.contains(start.as_str()) {
            continue;
        }
        // Depth-first from `start`, looking for a way back to it.
        let mut stack = vec![(start.as_str(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in graph.get(node).into_iter().flat_map(|t| t.keys()) {
                if next == start {
                    let mut cycle = path.clone();
                    cycle.push(start.clone());
                    for n in &cycle {
                        if let Some((key, _)) = graph.get_key_value(n) {
                            done.insert(key.as_str());
                        }
                    }
                    found.push(cycle);
                    stack.clear();
                    break;
                }
                if seen.insert(next.as_str()) && !done.contains(next.as_str()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.as_str(), longer));
                }
            }
        }
        done.insert(start.as_str());
    }
    found
}
