//! Development tasks for actionkit: code generation, validation and scaffolding.

fn main() {
    println!("xtask: not yet implemented");
}
