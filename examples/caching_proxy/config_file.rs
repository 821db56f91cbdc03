//! `--config FILE`: every flag, in TOML. A key is a flag's long name (`max-capacity`, or
//! `max_capacity`); a boolean `true` turns a switch on; an array repeats a flag that takes
//! several values. Flags on the command line override the file's settings of the same name.
//!
//! ```toml
//! port = 3000
//! origin = "http://127.0.0.1:8000"
//! max-capacity = "512M"
//! store-set-cookie = true
//! trusted-proxy = ["10.0.0.0/8", "192.168.0.0/16"]
//! ```

use std::collections::HashSet;
use std::ffi::OsString;

use clap::CommandFactory;
use toml::{Table, Value};

use crate::config::Config;

/// The command line `args` (program name first) with the settings of the `--config` file it
/// names, if any, inserted before its own flags.
///
/// # Errors
///
/// One line: the file cannot be read, is not TOML, or has a key that is no flag or a value
/// that no flag takes.
pub(crate) fn with_config_file(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let Some(path) = config_path(&args) else {
        return Ok(args);
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("error: --config {path}: cannot read it ({e})"))?;
    let table: Table = text
        .parse()
        .map_err(|e| format!("error: --config {path}: not TOML ({})", one_line(&e)))?;
    let given: HashSet<String> = args
        .iter()
        .skip(1)
        .filter_map(|arg| arg.to_str()?.strip_prefix("--"))
        .map(|flag| flag.split('=').next().unwrap_or(flag).to_owned())
        .collect();
    let known: HashSet<String> = Config::command()
        .get_arguments()
        .filter_map(|arg| arg.get_long().map(str::to_owned))
        .collect();
    let mut out = vec![args[0].clone()];
    for (key, value) in &table {
        let flag = key.replace('_', "-");
        if !known.contains(&flag) || flag == "config" {
            return Err(format!("error: --config {path}: unknown setting `{key}`"));
        }
        if given.contains(&flag) {
            continue; // the command line wins
        }
        push_setting(&mut out, &flag, value)
            .map_err(|what| format!("error: --config {path}: `{key}` {what}"))?;
    }
    out.extend(args.into_iter().skip(1));
    Ok(out)
}

/// The path given with `--config PATH` or `--config=PATH`.
fn config_path(args: &[OsString]) -> Option<String> {
    let mut iter = args.iter().skip(1).filter_map(|arg| arg.to_str());
    while let Some(arg) = iter.next() {
        if arg == "--config" {
            return iter.next().map(str::to_owned);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(path.to_owned());
        }
    }
    None
}

/// Appends the flag `--flag` for `value` to `out`.
fn push_setting(out: &mut Vec<OsString>, flag: &str, value: &Value) -> Result<(), &'static str> {
    let scalar = |value: &Value| match value {
        Value::String(s) => Ok(s.clone()),
        Value::Integer(i) => Ok(i.to_string()),
        Value::Float(f) => Ok(f.to_string()),
        _ => Err("must be a string, a number, true or an array of them"),
    };
    match value {
        Value::Boolean(true) => out.push(format!("--{flag}").into()),
        Value::Boolean(false) => {}
        Value::Array(values) => {
            for value in values {
                out.push(format!("--{flag}").into());
                out.push(scalar(value)?.into());
            }
        }
        value => {
            out.push(format!("--{flag}").into());
            out.push(scalar(value)?.into());
        }
    }
    Ok(())
}

/// `err`'s text on one line.
fn one_line(err: &impl std::fmt::Display) -> String {
    err.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn file(text: &str) -> String {
        let path = std::env::temp_dir().join(format!(
            "tcl-config-{}-{:?}.toml",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn settings_come_before_the_command_line_which_wins() {
        let path = file(
            "port = 4000\norigin = \"http://o:1\"\nstore_set_cookie = true\n\
             trusted-proxy = [\"10.0.0.0/8\", \"::1\"]\npreserve-host = false\n",
        );
        let out = with_config_file(args(&["p", "--config", &path, "--port", "5000"])).unwrap();
        let out: Vec<String> = out.into_iter().map(|a| a.into_string().unwrap()).collect();
        assert_eq!(
            out,
            [
                "p",
                "--origin",
                "http://o:1",
                "--store-set-cookie",
                "--trusted-proxy",
                "10.0.0.0/8",
                "--trusted-proxy",
                "::1",
                "--config",
                &path,
                "--port",
                "5000",
            ]
        );
        let config = Config::try_parse_from(&out).unwrap();
        assert_eq!(config.port, 5000);
        assert!(config.store_set_cookie);
        assert_eq!(config.trusted_proxy.len(), 2);
    }

    #[test]
    fn unknown_keys_and_bad_files_are_one_line_errors() {
        let unknown = file("colour = \"blue\"\n");
        let err = with_config_file(args(&["p", "--config", &unknown])).unwrap_err();
        assert!(err.contains("unknown setting `colour`"), "{err}");
        let broken = file("port = \n");
        let err = with_config_file(args(&["p", &format!("--config={broken}")])).unwrap_err();
        assert!(err.contains("not TOML") && !err.contains('\n'), "{err}");
        let err = with_config_file(args(&["p", "--config", "/nonexistent.toml"])).unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
    }
}
