//! AIStore's name templates on the client side: `shard-{000..099}.tar`,
//! `a-{0010..0013..2}-b-{1..2}` (ranges with optional step, zero-padded to
//! the width of the start), expanded into names; and a file source's shell
//! wildcard (`docs/*.md`).

use anyhow::{bail, Result};

/// Whether `s` holds a `{A..B}` range.
pub fn is_template(s: &str) -> bool {
    s.find('{')
        .is_some_and(|i| s[i..].contains("..") && s[i..].contains('}'))
}

/// Every name `t` stands for, in order (the cartesian product of its ranges).
pub fn expand(t: &str) -> Result<Vec<String>> {
    // Literal parts and ranges, alternating: lit0 {r0} lit1 {r1} ... litN.
    let mut lits = vec![String::new()];
    let mut ranges: Vec<Vec<String>> = Vec::new();
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| open + c) else {
            bail!("template \"{t}\": '{{' without '}}'");
        };
        let body = &rest[open + 1..close];
        if let Some(l) = lits.last_mut() {
            l.push_str(&rest[..open]);
        }
        ranges.push(range(t, body)?);
        lits.push(String::new());
        rest = &rest[close + 1..];
    }
    if let Some(l) = lits.last_mut() {
        l.push_str(rest);
    }
    let total: usize = ranges.iter().map(Vec::len).product();
    if total > 10_000_000 {
        bail!("template \"{t}\" names {total} objects (at most 10,000,000)");
    }
    let mut out = vec![lits[0].clone()];
    for (r, lit) in ranges.iter().zip(&lits[1..]) {
        let mut next = Vec::with_capacity(out.len() * r.len());
        for prefix in &out {
            for v in r {
                next.push(format!("{prefix}{v}{lit}"));
            }
        }
        out = next;
    }
    Ok(out)
}

fn range(t: &str, body: &str) -> Result<Vec<String>> {
    let parts: Vec<&str> = body.split("..").collect();
    let (a, b, step) = match parts.as_slice() {
        [a, b] => (*a, *b, "1"),
        [a, b, s] => (*a, *b, *s),
        _ => bail!(
            "template \"{t}\": expected {{START..END}} or {{START..END..STEP}}, got {{{body}}}"
        ),
    };
    let num = |s: &str| -> Result<u64> {
        s.trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("template \"{t}\": \"{s}\" is not a number"))
    };
    let (start, end, step) = (num(a)?, num(b)?, num(step)?);
    if start > end || step == 0 {
        bail!("template \"{t}\": invalid range {{{body}}}");
    }
    let width = a.trim().len();
    Ok((start..=end)
        .step_by(step as usize)
        .map(|n| format!("{n:0width$}"))
        .collect())
}

/// A shell wildcard (`*`, `?`) match of a whole name.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_expand_with_padding_and_steps() {
        assert_eq!(
            expand("shard-{00..02}.tar").unwrap(),
            ["shard-00.tar", "shard-01.tar", "shard-02.tar"]
        );
        assert_eq!(
            expand("p-{0010..0013..2}-g-{1..2}").unwrap(),
            ["p-0010-g-1", "p-0010-g-2", "p-0012-g-1", "p-0012-g-2"]
        );
        assert_eq!(expand("plain").unwrap(), ["plain"]);
        assert!(expand("x-{5..1}").is_err());
        assert!(expand("x-{1..").is_err());
        assert!(is_template("a{1..2}") && !is_template("a{b}"));
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.md", "README.md"));
        assert!(glob_match("a?c*", "abcdef"));
        assert!(!glob_match("*.md", "README.txt"));
    }
}
