//! Prints the generated JSON Schemas (`destination` or `action`) to stdout.

fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let schema = if which == "action" {
        actionkit_spec::action_schema()
    } else {
        actionkit_spec::destination_schema()
    };
    match serde_json::to_string_pretty(&schema) {
        Ok(text) => println!("{text}"),
        Err(err) => eprintln!("cannot print the schema: {err}"),
    }
}
