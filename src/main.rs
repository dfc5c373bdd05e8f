use clap::{Parser, Subcommand};
use rollout_guard::lint;

#[derive(Parser)]
#[command(
    name = "rollout-guard",
    version,
    about = "Admission webhook for Argo Rollouts canaries with Istio"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check YAML files, folders (recursively) or stdin (`-`) with the admission rules.
    Lint {
        /// Files, folders or `-` for stdin (default: stdin).
        paths: Vec<String>,
        #[arg(long, value_enum, default_value = "text")]
        output: lint::Output,
    },
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Lint { paths, output } => lint::run(
            &paths,
            output,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        ),
    };
    std::process::exit(code);
}
