//! Output formatting shared by the commands: aligned tables and IEC sizes in
//! AIStore's style (`17.88KiB`).

use ais_client::Client;

/// `1B`, `17.88KiB`, `1.00MiB` — as AIStore's `cos.ToSizeIEC(n, 2)`.
pub fn size_iec(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1024.0;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.2}{}", UNITS[i])
}

/// Prints rows as a table with left-aligned columns separated by spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < w.len() {
                w[i] = w[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            s.push_str(c);
            if i + 1 < n {
                s.push_str(&" ".repeat(w[i] - c.chars().count() + 2));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// A node's STATUS column: its lifecycle flag, and `offline` when it does
/// not answer.
fn node_status(flags: u64, alive: bool) -> String {
    use ais_core::meta::{NODE_FLAG_DECOMMISSION, NODE_FLAG_MAINTENANCE};
    let state = if flags & NODE_FLAG_DECOMMISSION != 0 {
        Some("decommissioning")
    } else if flags & NODE_FLAG_MAINTENANCE != 0 {
        Some("maintenance")
    } else {
        None
    };
    match (state, alive) {
        (None, true) => "online".into(),
        (None, false) => "offline".into(),
        (Some(s), true) => s.into(),
        (Some(s), false) => format!("{s}, offline"),
    }
}

pub async fn show_cluster(client: &Client, json: bool) -> anyhow::Result<()> {
    let smap = client.smap().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&smap)?);
        return Ok(());
    }
    // What each node is, truthfully: its flags in the map and whether it
    // answers now (a shut-down target stays in the map, in maintenance).
    let alive = futures::future::join_all(
        smap.pmap
            .values()
            .chain(smap.tmap.values())
            .map(|n| client.node_alive(n.url())),
    )
    .await;
    let (p_alive, t_alive) = alive.split_at(smap.pmap.len());
    let rows: Vec<Vec<String>> = smap
        .pmap
        .values()
        .zip(p_alive)
        .map(|(p, up)| {
            let mark = if p.daemon_id == smap.proxy_si.daemon_id {
                "[P]"
            } else {
                ""
            };
            vec![
                format!("p[{}]{mark}", p.daemon_id),
                p.url().to_string(),
                node_status(p.flags, *up),
            ]
        })
        .collect();
    table(&["PROXY", "URL", "STATUS"], &rows);
    println!();
    let caps = futures::future::join_all(
        smap.tmap
            .values()
            .map(|t| crate::perf::capacity(client, t.url())),
    )
    .await;
    let rows: Vec<Vec<String>> = smap
        .tmap
        .values()
        .zip(caps)
        .zip(t_alive)
        .map(|((t, cap), up)| {
            let mut r = vec![
                format!("t[{}]", t.daemon_id),
                t.url().to_string(),
                node_status(t.flags, *up),
            ];
            r.extend(cap);
            r
        })
        .collect();
    table(
        &[
            "TARGET",
            "URL",
            "STATUS",
            "CAP USED",
            "CAP TOTAL",
            "USED%",
            "MOUNTPATHS",
        ],
        &rows,
    );
    println!();
    println!("Summary:");
    println!("  Proxies:       {}", smap.pmap.len());
    println!("  Targets:       {}", smap.tmap.len());
    println!(
        "  Cluster Map:   version {}, uuid {}",
        smap.version, smap.uuid
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::size_iec(1), "1B");
        assert_eq!(super::size_iec(18309), "17.88KiB");
        assert_eq!(super::size_iec(1 << 20), "1.00MiB");
    }
}
