//! `airlock completions SHELL` and `airlock man`: shell completions and manual pages, both
//! generated from the same clap definitions as the command itself, so they cannot drift.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(clap::Args)]
#[command(after_help = "Install:\n  \
    airlock completions bash > /etc/bash_completion.d/airlock\n  \
    airlock completions zsh > /usr/local/share/zsh/site-functions/_airlock\n  \
    airlock completions fish > ~/.config/fish/completions/airlock.fish")]
pub struct CompletionsArgs {
    /// The shell to write completions for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(clap::Args)]
#[command(after_help = "Install:\n  airlock man --out /usr/local/share/man/man1 && mandb -q\n  man airlock-mirror-import")]
pub struct ManArgs {
    /// Folder to write one page per command into (airlock.1, airlock-mirror-import.1, …).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

pub fn completions(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let mut command = crate::cli();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "airlock", &mut script);
    match std::io::stdout().write_all(&script) {
        // `airlock completions bash | head` is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        other => other.map(|()| ExitCode::SUCCESS).context("cannot write the completions"),
    }
}

pub fn man(args: ManArgs) -> anyhow::Result<ExitCode> {
    fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut written = 0;
    let mut stack = vec![(crate::cli(), vec!["airlock".to_string()])];
    while let Some((command, words)) = stack.pop() {
        // Page `airlock-mirror-import(1)`, whose synopsis reads `airlock mirror import`.
        let name = words.join("-");
        let command = command.display_name(name.clone()).bin_name(words.join(" "));
        let mut page = Vec::new();
        clap_mangen::Man::new(command.clone()).render(&mut page).with_context(|| format!("cannot render the page of {name}"))?;
        let file = args.out.join(format!("{name}.1"));
        fs::write(&file, page).with_context(|| format!("cannot write {}", file.display()))?;
        written += 1;
        for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
            stack.push((sub.clone(), [words.clone(), vec![sub.get_name().to_string()]].concat()));
        }
    }
    println!("wrote {written} manual pages into {}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
