//! Copy-on-write database copies: on PostgreSQL 18+, `CREATE DATABASE ... STRATEGY FILE_COPY`
//! clones the template's files instead of copying them when the session sets
//! `file_copy_method = clone` (Linux `copy_file_range`), which a filesystem that shares blocks
//! (btrfs, XFS with reflink, bcachefs, OCFS2, ZFS 2.2+) does in constant time per file.
//!
//! Whether the data directory is on such a filesystem is asked of the server itself, so it
//! holds for every backend and engine alike: its `data_directory` and its own
//! `/proc/self/mountinfo` (read with `pg_read_file`, which devenv's superuser may) name the
//! filesystem the data lives on. Anywhere else, or when the server cannot say (before 18, not
//! Linux, not allowed to read the file), copies stay plain `FILE_COPY`, silently. A clone on a
//! filesystem that turns out not to share blocks is still a correct copy: the kernel copies
//! the bytes itself.

use tokio_postgres::{Client, SimpleQueryMessage};

/// Filesystem types whose `copy_file_range` shares blocks instead of copying them.
const CLONING_FILESYSTEMS: [&str; 5] = ["btrfs", "xfs", "bcachefs", "ocfs2", "zfs"];

/// Sets `file_copy_method = clone` on this session when the server's data directory is on a
/// filesystem that clones files; returns whether it did. Never fails: a server that cannot
/// clone, or cannot say, copies as before.
pub async fn enable(client: &Client) -> bool {
    let asked = client
        .simple_query(
            "SELECT current_setting('data_directory'), pg_read_file('/proc/self/mountinfo') \
             WHERE current_setting('server_version_num')::int >= 180000",
        )
        .await;
    let Some((data_dir, mountinfo)) = asked.ok().and_then(|messages| {
        messages.into_iter().find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some((row.get(0)?.to_owned(), row.get(1)?.to_owned())),
            _ => None,
        })
    }) else {
        return false;
    };
    let clones = filesystem_of(&mountinfo, &data_dir)
        .is_some_and(|fs| CLONING_FILESYSTEMS.contains(&fs.as_str()));
    clones && set(client).await
}

/// Sets `file_copy_method = clone` on another session of a server [`enable`] said clones;
/// returns whether it took.
pub async fn set(client: &Client) -> bool {
    client
        .batch_execute("SET file_copy_method = clone")
        .await
        .is_ok()
}

/// The filesystem type of the mount holding `path`, from a `/proc/<pid>/mountinfo` text: the
/// longest mount point that is `path` or one of its parents (the last one mounted there wins).
pub fn filesystem_of(mountinfo: &str, path: &str) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for line in mountinfo.lines() {
        // id parent major:minor root mount-point options [optional...] - fstype source super
        let mut fields = line.split(' ');
        let Some(mount_point) = fields.nth(4).map(unescape) else {
            continue;
        };
        let Some(fs_type) = fields.skip_while(|f| *f != "-").nth(1) else {
            continue;
        };
        let under = path == mount_point
            || mount_point == "/"
            || path
                .strip_prefix(mount_point.as_str())
                .is_some_and(|rest| rest.starts_with('/'));
        if under
            && best
                .as_ref()
                .is_none_or(|(len, _)| mount_point.len() >= *len)
        {
            best = Some((mount_point.len(), fs_type.to_owned()));
        }
    }
    best.map(|(_, fs)| fs)
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match octal {
            Some(byte) if bytes[i] == b'\\' => {
                out.push(byte);
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
1089 1040 0:52 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/l,upperdir=/u
1090 1089 0:55 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
1101 1089 254:0 /volumes/v1/_data /var/lib/postgresql/data rw,relatime - ext4 /dev/vda rw
1102 1089 7:0 / /var/lib/postgresql/18/docker rw,relatime shared:7 - xfs /dev/loop0 rw,attr2
1103 1089 0:60 / /srv/with\\040space rw - btrfs /dev/loop1 rw
1104 1089 0:61 / /var/lib/postgresql/data rw - tmpfs tmpfs rw,mode=700
";

    #[test]
    fn the_longest_mount_point_holding_the_path_names_its_filesystem() {
        let fs = |p: &str| filesystem_of(MOUNTINFO, p);
        assert_eq!(fs("/var/lib/postgresql/18/docker").as_deref(), Some("xfs"));
        assert_eq!(
            fs("/var/lib/postgresql/18/docker/base/1").as_deref(),
            Some("xfs")
        );
        // Mounted over: the last mount at a point wins.
        assert_eq!(fs("/var/lib/postgresql/data").as_deref(), Some("tmpfs"));
        // A sibling whose name starts with a mount point's is not under it.
        assert_eq!(
            fs("/var/lib/postgresql/18/dockerx").as_deref(),
            Some("overlay")
        );
        assert_eq!(fs("/srv/with space/pgdata").as_deref(), Some("btrfs"));
        assert_eq!(fs("/home").as_deref(), Some("overlay"));
        assert_eq!(filesystem_of("garbage\n", "/x"), None);
    }
}
