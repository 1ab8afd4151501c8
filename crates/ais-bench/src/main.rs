//! `aisloader` binary entry point (see `loader.rs`).

mod loader;

fn main() {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(loader::main_async()) {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}
