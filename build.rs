//! The shipped templates are compiled into the binary (`include_dir!`), which
//! cargo does not track: rebuild when they change, so `aviso demo` never runs
//! yesterday's text.
fn main() {
    println!("cargo:rerun-if-changed=templates");
    println!("cargo:rerun-if-changed=migrations");
}
