//! Colour in the text report (issue 23 item 7): `--color always` colours severities, lock
//! names and sites; `auto` (the default) is plain when stdout is not a terminal, as in these
//! tests; `never` is plain; stripping the escape codes gives the plain text exactly.

mod scenario_support;

use scenario_support::hindsight;
use std::process::Command;

const TRACE: &str = "traces/incident_hang.trace";
const RED_BOLD: &str = "\u{1b}[1m\u{1b}[31m";
const RESET: &str = "\u{1b}[0m";

fn stdout(args: &[&str]) -> String {
    String::from_utf8(hindsight(args).stdout).expect("UTF-8 output")
}

/// `text` without ANSI SGR sequences (`ESC [ ... m`).
fn strip_sgr(text: &str) -> String {
    let mut plain = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('\u{1b}') {
        plain.push_str(&rest[..start]);
        let end = rest[start..].find('m').expect("an SGR sequence ends in m");
        rest = &rest[start + end + 1..];
    }
    plain.push_str(rest);
    plain
}

#[test]
fn always_colours_severities_locks_and_sites() {
    let text = stdout(&["analyze", "--color", "always", TRACE]);
    assert!(text.contains(&format!("{RED_BOLD}Errors (2):{RESET}\n")), "{text}");
    // The cycle is named from the lock whose inversion the run met first, `accounts` or
    // `ledger`: the recording decides, the colouring does not.
    let cycle = |first: &str, second: &str| {
        format!(
            "{RED_BOLD}error[lock-order-cycle]{RESET}: locks \u{1b}[35m`{first}`{RESET} and \
             \u{1b}[35m`{second}`{RESET} are taken in opposite orders\n"
        )
    };
    assert!(
        text.contains(&cycle("accounts", "ledger")) || text.contains(&cycle("ledger", "accounts")),
        "{text}"
    );
    assert!(
        text.contains(&format!("\u{1b}[36mtraces/src/bin/incident_hang.rs:60:42{RESET}")),
        "{text}"
    );
}

#[test]
fn coloured_text_is_the_plain_text_with_escape_codes() {
    let coloured = stdout(&["analyze", "--color", "always", TRACE]);
    let plain = stdout(&["analyze", "--color", "never", TRACE]);
    assert!(!plain.contains('\u{1b}'));
    assert_eq!(strip_sgr(&coloured), plain);
    let info = stdout(&["info", "--color", "always", TRACE]);
    assert!(info.starts_with(&format!("\u{1b}[1mtrace{RESET}      {TRACE}")), "{info}");
    assert_eq!(strip_sgr(&info), stdout(&["info", "--color", "never", TRACE]));
}

#[test]
fn auto_is_plain_when_piped_and_no_color_is_respected() {
    let piped = stdout(&["analyze", TRACE]);
    assert!(!piped.contains('\u{1b}'), "{piped}");
    let output = Command::new(env!("CARGO_BIN_EXE_hindsight"))
        .args(["analyze", "--color", "auto", TRACE])
        .env("NO_COLOR", "1")
        .current_dir(scenario_support::root())
        .output()
        .expect("hindsight runs");
    assert_eq!(String::from_utf8_lossy(&output.stdout), piped);
}

/// `hindsight ARGS` on a pseudo-terminal (util-linux `script`), with `NO_COLOR` as given.
#[cfg(target_os = "linux")]
fn on_a_terminal(args: &str, no_color: Option<&str>) -> String {
    let mut script = Command::new("script");
    script
        .args(["-qec", &format!("{} {args}", env!("CARGO_BIN_EXE_hindsight")), "/dev/null"])
        .env_remove("NO_COLOR")
        .stdin(std::process::Stdio::null())
        .current_dir(scenario_support::root());
    if let Some(value) = no_color {
        script.env("NO_COLOR", value);
    }
    let output = script.output().expect("`script` (util-linux) runs: install it to test colour");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

#[cfg(target_os = "linux")]
#[test]
fn auto_colours_a_terminal_unless_no_color_is_set() {
    let args = format!("analyze {TRACE} ; true");
    assert!(on_a_terminal(&args, None).contains(&format!("{RED_BOLD}Errors (2):{RESET}")));
    assert!(on_a_terminal(&args, Some("")).contains(RED_BOLD), "an empty NO_COLOR is unset");
    assert!(!on_a_terminal(&args, Some("1")).contains('\u{1b}'));
    let always = format!("analyze --color always {TRACE} ; true");
    assert!(on_a_terminal(&always, Some("1")).contains(RED_BOLD), "--color always wins");
}

#[test]
fn json_is_never_coloured() {
    let json = stdout(&["analyze", "--color", "always", "--format", "json", TRACE]);
    assert!(!json.contains('\u{1b}'));
}
