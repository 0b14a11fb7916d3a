//! Loads a destination directory and prints its diagnostics (or a summary when it is valid).

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: check <actions/dest>");
        std::process::exit(2);
    };
    match actionkit_spec::load_destination_dir(&dir) {
        Ok(loaded) => println!(
            "ok: {} with {} actions",
            loaded.destination.name,
            loaded.actions.len()
        ),
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            std::process::exit(1);
        }
    }
}
