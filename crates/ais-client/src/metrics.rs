//! A node's `/metrics` (Prometheus text format): fetch and a small parser,
//! enough for the CLI's tables (samples only; `# HELP`/`# TYPE` skipped).

use crate::{paths, Client, ClientError, Result};
use reqwest::Method;

/// One sample line: `name{k="v",...} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, k: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
}

/// Parsed samples of one scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape(pub Vec<Sample>);

impl Scrape {
    /// Sum of every series named `name` (all label values); 0 if none.
    pub fn sum(&self, name: &str) -> f64 {
        self.0
            .iter()
            .filter(|s| s.name == name)
            .fold(0.0, |a, s| a + s.value)
    }

    /// A node metric whatever the node's role: `get_n` sums
    /// `ais_target_get_n` and `ais_proxy_get_n`.
    pub fn node(&self, metric: &str) -> f64 {
        self.sum(&format!("ais_target_{metric}")) + self.sum(&format!("ais_proxy_{metric}"))
    }

    pub fn series<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.0.iter().filter(move |s| s.name == name)
    }
}

/// Parses the text exposition format (label values unescaped).
pub fn parse(text: &str) -> Scrape {
    Scrape(text.lines().filter_map(parse_line).collect())
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => return None,
    };
    let mut labels = Vec::new();
    let rest = if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '}' {
                end = Some(i);
                break;
            }
            if c == ',' || c.is_whitespace() {
                continue;
            }
            // key
            let mut key = String::from(c);
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return None;
            }
            let mut val = String::new();
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => match chars.next().map(|(_, c)| c) {
                        Some('n') => val.push('\n'),
                        Some(o) => val.push(o),
                        None => return None,
                    },
                    '"' => break,
                    o => val.push(o),
                }
            }
            labels.push((key.trim().to_string(), val));
        }
        &r[end? + 1..]
    } else {
        rest
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

impl Client {
    /// `GET NODE_URL/metrics`, parsed (`node_url`: a proxy's or target's
    /// URL from the cluster map).
    pub async fn node_metrics(&self, node_url: &str) -> Result<Scrape> {
        let url = format!("{}{}", node_url.trim_end_matches('/'), paths::METRICS);
        let resp = self.request(Method::GET, url, None, &[]).await?;
        let text = resp
            .text()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok(parse(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_samples() {
        let s = parse(
            "# HELP x y\n# TYPE ais_target_get_n counter\n\
             ais_target_get_n{node_id=\"t1\"} 5\n\
             ais_target_capacity_used_bytes{node_id=\"t1\",mountpath=\"/a\\\"b\"} 10\n\
             ais_target_get_latency_seconds_bucket{node_id=\"t1\",le=\"+Inf\"} 3\n\
             plain 1.5\n",
        );
        assert_eq!(s.sum("ais_target_get_n"), 5.0);
        assert_eq!(s.node("get_n"), 5.0);
        assert_eq!(s.node("put_n").to_string(), "0");
        let c: Vec<_> = s.series("ais_target_capacity_used_bytes").collect();
        assert_eq!(c[0].label("mountpath"), Some("/a\"b"));
        assert_eq!(s.sum("plain"), 1.5);
        assert_eq!(s.0.len(), 4);
    }
}
