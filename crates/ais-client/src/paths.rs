//! Every REST path (and path-plus-query) the client sends, in one place.
//! Pure string builders, so the exact wire form is unit-tested here.
//!
//! Path segments and query values pass through [`enc`](crate::enc), which
//! keeps `/ - _ . ~` and escapes everything else that is not alphanumeric
//! (`&` becomes `%26`, `#` becomes `%23`).

use crate::enc;

pub use ais_core::paths::{
    BUCKETS, CLUSTER, DAEMON, DAEMON_MOUNTPATHS, ETL, HEALTH, METRICS, OBJECTS, SORT,
};

/// `/v1/buckets?QUERY`.
pub fn buckets_query(query: &str) -> String {
    format!("{BUCKETS}?{query}")
}

/// `/v1/buckets/NAME`.
pub fn bucket(name: &str) -> String {
    format!("{BUCKETS}/{name}")
}

/// `/v1/objects/BUCKET` (bucket-level object actions: promote).
pub fn bucket_objects(bucket: &str) -> String {
    format!("{OBJECTS}/{bucket}")
}

/// `/v1/objects/BUCKET/OBJECT` (object name escaped).
pub fn object(bucket: &str, obj: &str) -> String {
    format!("{OBJECTS}/{bucket}/{}", enc(obj))
}

/// `/v1/sort?uuid=ID` (`what` "abort": `/v1/sort/abort?uuid=ID`).
pub fn dsort(what: &str, id: &str) -> String {
    if what.is_empty() {
        format!("{SORT}?uuid={}", enc(id))
    } else {
        format!("{SORT}/{what}?uuid={}", enc(id))
    }
}

/// `/v1/daemon?what=WHAT`.
pub fn daemon_what(what: &str) -> String {
    format!("{DAEMON}?what={what}")
}

/// `/v1/cluster?what=WHAT`.
pub fn cluster_what(what: &str) -> String {
    format!("{CLUSTER}?what={what}")
}

/// AIStore's uname of an `ais://` bucket with the default namespace, as a
/// query value: `ais/@%23/NAME/`.
fn ais_bck_uname(name: &str) -> String {
    format!("ais/@%23/{name}/")
}

/// `POST` target of a bucket-to-bucket job (`copy-bck`, `etl-bck`):
/// `/v1/buckets/SRC?provider=ais&bck_to=ais/@%23/DST/`.
pub fn bucket_to_bucket(src: &str, dst: &str) -> String {
    format!("{}?provider=ais&bck_to={}", bucket(src), ais_bck_uname(dst))
}

/// `PUT` target that transforms one object into another bucket:
/// `/v1/objects/SRC/OBJ?provider=ais&object_to=ais/@%23/DST/OBJ2&etl_name=NAME[&etl_args=ARGS]`.
pub fn etl_object_to(
    src_bck: &str,
    src_obj: &str,
    dst_bck: &str,
    dst_obj: &str,
    etl: &str,
    etl_args: Option<&str>,
) -> String {
    let mut q = format!(
        "{}?provider=ais&object_to={}{}&etl_name={}",
        object(src_bck, src_obj),
        ais_bck_uname(dst_bck),
        enc(dst_obj),
        enc(etl)
    );
    if let Some(args) = etl_args {
        q.push_str("&etl_args=");
        q.push_str(&enc(args));
    }
    q
}

/// `/v1/etl/NAME`.
pub fn etl(name: &str) -> String {
    format!("{ETL}/{}", enc(name))
}

/// `/v1/etl/NAME/stop`, `/v1/etl/NAME/start`, `/v1/etl/NAME/logs`, ...
pub fn etl_sub(name: &str, sub: &str) -> String {
    format!("{}/{sub}", etl(name))
}

/// `/v1/etl/NAME/logs` or `/v1/etl/NAME/logs/TARGET`.
pub fn etl_logs(name: &str, target: Option<&str>) -> String {
    match target {
        Some(t) => format!("{}/{}", etl_sub(name, "logs"), enc(t)),
        None => etl_sub(name, "logs"),
    }
}

/// `/v1/etl/NAME?uuid=JOB`: the ETL with the per-object errors of one job.
pub fn etl_job(name: &str, job: &str) -> String {
    format!("{}?uuid={}", etl(name), enc(job))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_paths() {
        assert_eq!(bucket("b"), "/v1/buckets/b");
        assert_eq!(buckets_query("provider=ais"), "/v1/buckets?provider=ais");
        assert_eq!(
            bucket_to_bucket("src", "dst"),
            "/v1/buckets/src?provider=ais&bck_to=ais/@%23/dst/"
        );
    }

    #[test]
    fn object_paths() {
        assert_eq!(object("b", "d/x y.txt"), "/v1/objects/b/d/x%20y.txt");
        assert_eq!(object("b", "a&b#c?"), "/v1/objects/b/a%26b%23c%3F");
    }

    #[test]
    fn cluster_and_daemon() {
        assert_eq!(daemon_what("smap"), "/v1/daemon?what=smap");
        assert_eq!(cluster_what("status"), "/v1/cluster?what=status");
        assert_eq!(cluster_what("jobs"), "/v1/cluster?what=jobs");
    }

    #[test]
    fn etl_paths() {
        assert_eq!(etl("my-etl"), "/v1/etl/my-etl");
        assert_eq!(etl_sub("my-etl", "stop"), "/v1/etl/my-etl/stop");
        assert_eq!(etl_logs("e1", None), "/v1/etl/e1/logs");
        assert_eq!(etl_logs("e1", Some("t1")), "/v1/etl/e1/logs/t1");
        assert_eq!(etl_job("e1", "j-1"), "/v1/etl/e1?uuid=j-1");
    }

    #[test]
    fn etl_object_copy() {
        assert_eq!(
            etl_object_to("src", "d/0003.txt", "copy", "x/three.txt", "cli-upper", None),
            "/v1/objects/src/d/0003.txt?provider=ais&object_to=ais/@%23/copy/x/three.txt&etl_name=cli-upper"
        );
        // `&` in names and arguments cannot end the query value.
        assert_eq!(
            etl_object_to("s", "a b", "d", "x&y", "e", Some("k=v&w")),
            "/v1/objects/s/a%20b?provider=ais&object_to=ais/@%23/d/x%26y&etl_name=e&etl_args=k%3Dv%26w"
        );
    }
}
