//! The README's command table says what `knit --help` says: a row for every command, and in
//! each row every flag the command's `--help` prints (long or short form), and no flag it
//! does not take.

mod common;

use std::collections::{BTreeMap, BTreeSet};

/// One flag as `--help` prints it: `-n, --namespace <NAMESPACE>` is `("namespace", Some('n'))`.
type Flag = (String, Option<char>);

/// The subcommands `--help` lists under "Commands:" (without `help`).
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// The flags `--help` lists (without `--help` and `--version`).
fn flags(help: &str) -> Vec<Flag> {
    let mut out = Vec::new();
    for line in help.lines() {
        let l = line.trim_start();
        let (short, rest) = match l.strip_prefix('-') {
            Some(r) if !r.starts_with('-') => (r.chars().next(), r.get(1..).unwrap_or_default()),
            _ => (None, l),
        };
        let rest = rest.trim_start_matches(", ");
        let Some(long) = rest.strip_prefix("--") else {
            continue;
        };
        let name: String = long
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if name != "help" && name != "version" {
            out.push((name, short));
        }
    }
    out
}

fn help(path: &[String]) -> String {
    let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
    args.push("--help");
    let (code, out, err) = common::cli(&args);
    assert_eq!(code, 0, "knit {args:?}: {err}");
    out
}

/// The command table's rows: the command cell of each row starting with `` `knit ``.
fn rows(readme: &str) -> Vec<String> {
    readme
        .lines()
        .skip_while(|l| !l.starts_with("## The command line"))
        .skip(1)
        .take_while(|l| !l.starts_with("## "))
        .filter_map(|l| l.strip_prefix("| `knit "))
        .filter_map(|l| {
            l.split_once("` |")
                .map(|(cell, _)| cell.replace("\\|", "|"))
        })
        .collect()
}

/// `-x` and `--long` tokens of a command cell.
fn tokens(cell: &str) -> (BTreeSet<String>, BTreeSet<char>) {
    let mut longs = BTreeSet::new();
    let mut shorts = BTreeSet::new();
    for word in cell.split(|c: char| c.is_whitespace() || "[]()|".contains(c)) {
        if let Some(long) = word.strip_prefix("--") {
            let name: String = long
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            longs.insert(name);
        } else if let Some(s) = word.strip_prefix('-') {
            let mut chars = s.chars();
            if let (Some(c), None) = (chars.next(), chars.next())
                && c.is_ascii_alphabetic()
            {
                shorts.insert(c);
            }
        }
    }
    (longs, shorts)
}

#[test]
fn the_command_table_lists_every_command_and_every_flag_of_its_help() {
    let readme = std::fs::read_to_string(common::repo("README.md")).expect("README.md");
    let top = subcommands(&help(&[]));
    assert!(top.contains(&"run".to_string()), "{top:?}");
    // Every command path `--help` knows (`filter test`, `replay trigger`, ...).
    let mut paths: Vec<Vec<String>> = Vec::new();
    for c in &top {
        let nested = subcommands(&help(std::slice::from_ref(c)));
        if nested.is_empty() {
            paths.push(vec![c.clone()]);
        }
        paths.extend(nested.into_iter().map(|n| vec![c.clone(), n]));
    }
    // The README's rows by the command path they document (`get KIND` and `get events` are
    // both `get`).
    let mut documented: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
    for cell in rows(&readme) {
        let words: Vec<&str> = cell.split_whitespace().collect();
        let path = paths
            .iter()
            .filter(|p| p.iter().zip(&words).all(|(a, b)| a == b))
            .max_by_key(|p| p.len())
            .unwrap_or_else(|| panic!("README row `knit {cell}` is no command of knit --help"));
        documented.entry(path.clone()).or_default().push(cell);
    }
    let mut problems = Vec::new();
    for path in &paths {
        let name = path.join(" ");
        let Some(cells) = documented.get(path) else {
            problems.push(format!("knit {name}: no row in the README's command table"));
            continue;
        };
        let flags = flags(&help(path));
        let longs: BTreeSet<&str> = flags.iter().map(|(l, _)| l.as_str()).collect();
        let shorts: BTreeSet<char> = flags.iter().filter_map(|(_, s)| *s).collect();
        let (row_longs, row_shorts) = cells.iter().map(|c| tokens(c)).fold(
            (BTreeSet::new(), BTreeSet::new()),
            |(mut l, mut s), (cl, cs)| {
                l.extend(cl);
                s.extend(cs);
                (l, s)
            },
        );
        for (long, short) in &flags {
            let listed = row_longs.contains(long) || short.is_some_and(|s| row_shorts.contains(&s));
            if !listed {
                problems.push(format!(
                    "knit {name}: --{long} is missing from its README row"
                ));
            }
        }
        for cell in cells {
            let (cl, cs) = tokens(cell);
            for long in cl.iter().filter(|l| !longs.contains(l.as_str())) {
                problems.push(format!(
                    "README `knit {cell}`: --{long} is not in its --help"
                ));
            }
            for short in cs.iter().filter(|s| !shorts.contains(s)) {
                problems.push(format!(
                    "README `knit {cell}`: -{short} is not in its --help"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_flag_parser_reads_clap_help() {
    let help = "Options:\n  -n, --namespace <NAMESPACE>\n          Namespace\n      --otlp-endpoint <URL>\n  -h, --help\n";
    assert_eq!(
        flags(help),
        [
            ("namespace".to_string(), Some('n')),
            ("otlp-endpoint".to_string(), None)
        ]
    );
    let (longs, shorts) = tokens("get KIND [-n NS] [-o yaml|json] (--broker NS/NAME | --x)");
    assert_eq!(longs.into_iter().collect::<Vec<_>>(), ["broker", "x"]);
    assert_eq!(shorts.into_iter().collect::<Vec<_>>(), ['n', 'o']);
}
