//! The actionkit command-line interface.

fn main() {
    println!("actionkit: not yet implemented");
}
