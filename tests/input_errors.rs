//! Bad input gets one clear line and exit 2 (issue 23 item 5): an STD file whose first line is
//! longer than anything sniffed is called too long, not "wrong magic number".

mod scenario_support;

use scenario_support::hindsight;

#[test]
fn an_std_file_with_a_10_mib_line_is_a_line_too_long() {
    let path = std::env::temp_dir()
        .join(format!("hindsight-input-errors-{}-long.std", std::process::id()));
    let line = format!("T0|acq({})|1\n", "L".repeat(10 << 20));
    std::fs::write(&path, line).expect("written");
    for command in ["analyze", "info"] {
        let output = hindsight(&[command, path.to_str().expect("a UTF-8 temp path")]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{command}: {stderr}");
        assert!(
            stderr.starts_with(&format!(
                "hindsight: {}:1: malformed STD line `T0|acq(LLL",
                path.display()
            )) && stderr.ends_with("`: line longer than 4096 bytes\n"),
            "{command}: {stderr}"
        );
    }
}
