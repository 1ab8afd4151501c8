//! Global rebalance: when the set of targets changes, objects move to their
//! HRW owners as a tracked job while clients keep reading and writing.

use ais_client::Client;
use ais_testkit::rebal::{assert_placed, content, rebalances, settle, Load};
use ais_testkit::{Cluster, Opts};
use std::time::Duration;

async fn finished_rebalance(cl: &Client, after: usize) -> ais_client::JobStatus {
    ais_testkit::rebal::finished_rebalance(cl, after, Duration::from_secs(60)).await
}

fn rt() -> tokio::runtime::Runtime {
    ais_testkit::checks::runtime().unwrap()
}

#[test]
fn join_and_leave_under_load_move_objects_to_their_owners() {
    let opts = Opts {
        targets: 2,
        env: vec![("AIS_REBALANCE_SETTLE".into(), "1".into())],
        ..Default::default()
    };
    let mut c = Cluster::start_with(opts).unwrap();
    let rt = rt();
    let url = c.url().to_string();
    let names: Vec<String> = (0..300).map(|i| format!("r/{i:03}")).collect();
    rt.block_on(async {
        let cl = Client::new(&url);
        cl.create_bucket("rb").await.unwrap();
        for n in &names {
            cl.put_bytes("rb", n, content(n)).await.unwrap();
        }
    });
    // Readers and writers keep going across the join and the rebalance.
    let load = Load::start(&rt, &url, "rb", &names, 8);
    std::thread::sleep(Duration::from_millis(300));
    // Let the rebalance of the initial joins finish first, then count.
    settle(&rt, &url);
    let before = rt.block_on(async { rebalances(&Client::new(&url)).await });
    c.add_target().unwrap();
    let moved = rt.block_on(async {
        let cl = Client::new(&url);
        let j = finished_rebalance(&cl, before).await;
        assert_eq!((j.err_count, j.err.as_str()), (0, ""), "{j:?}");
        j.objs
    });
    let (written, errors, ops) = load.stop(&rt);
    assert_eq!(
        errors, 0,
        "client errors during the join and rebalance ({ops} ops)"
    );
    // About 1/3 of the objects (those written before the join and some
    // written during it) belong to the new target.
    let mut all = names.clone();
    all.extend(written);
    let total = all.len() as u64;
    assert!(
        moved >= names.len() as u64 / 6 && moved <= total * 2 / 3,
        "moved {moved} of {total} objects"
    );
    assert_placed(&c, "rb", &all);
    // Every object reads back, versions kept.
    rt.block_on(async {
        let cl = Client::new(&url);
        for n in &all {
            assert_eq!(
                cl.get("rb", n).await.unwrap().as_ref(),
                content(n).as_slice(),
                "{n}"
            );
        }
        assert_eq!(cl.head_object("rb", &names[0]).await.unwrap().version, "1");
        assert_eq!(cl.list_all("rb", "", "").await.unwrap().len(), all.len());
    });
    // A target leaves: the map drops it and another rebalance runs (what
    // was only on the stopped target cannot move; nothing else fails).
    let before = rt.block_on(async { rebalances(&Client::new(&url)).await });
    c.targets[2].stop();
    c.wait_targets(2).unwrap();
    rt.block_on(async {
        let cl = Client::new(&url);
        let j = finished_rebalance(&cl, before).await;
        assert_eq!(j.err_count, 0, "{j:?}");
    });
}
