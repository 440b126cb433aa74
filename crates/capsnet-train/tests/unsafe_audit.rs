//! The workspace denies `unsafe` code (`[workspace.lints.rust] unsafe_code = "deny"`, not
//! `forbid`, so that one function may allow it): exactly one `#[allow(unsafe_code)]` exists,
//! on `capsnet_train::allocator::apply`.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() && !name.starts_with('.') && name != "target" {
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_only_unsafe_is_the_allocator_settings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in ["crates", "benches", "xtask"] {
        rust_files(&root.join(dir), &mut files);
    }
    let needle = ["allow(", "unsafe_code)"].concat();
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (i, line) in text.lines().enumerate() {
            if line.contains(&needle) && !line.trim_start().starts_with("//") {
                found.push(format!("{}:{}", file.display(), i + 1));
            }
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("allocator.rs"), "{found:?}");
    let source =
        std::fs::read_to_string(root.join("crates/capsnet-train/src/allocator.rs")).unwrap();
    let attr = source.find(&needle).unwrap();
    let next_fn = &source[attr..source[attr..].find('{').map_or(source.len(), |i| attr + i)];
    assert!(next_fn.contains("pub fn apply()"), "{next_fn}");
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("unsafe_code = \"deny\""));
}
