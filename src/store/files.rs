//! Who may read the embedded store's files: the data directory is `0700` and the SQLite
//! database with its `-wal` and `-shm` files `0600`, whoever opens them and whatever their
//! umask. The database holds every SIM's inventory and every wrapped key and ciphertext; the
//! envelope encryption protects secrets, not the inventory or the audit trail.

use std::path::{Path, PathBuf};

/// Makes `dir` readable by its owner only (a directory made before this rule, or by a
/// permissive umask, is tightened).
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    set_mode(dir, 0o700)
}

/// Creates the database file as `0600` if it is missing (SQLite would create it with the
/// umask's leave, and its `-wal`/`-shm` files copy the database's mode), and tightens an
/// existing one.
pub(super) fn prepare_database(path: &Path) -> std::io::Result<()> {
    let mut open = std::fs::OpenOptions::new();
    open.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    open.open(path)?;
    set_mode(path, 0o600)
}

/// Tightens the database's `-wal` and `-shm` files, once open (they may predate this rule).
pub(super) fn seal_companions(path: &Path) -> std::io::Result<()> {
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let companion = PathBuf::from(name);
        if companion.exists() {
            set_mode(&companion, 0o600)?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::metadata(path)?.permissions().mode() & 0o777 != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_are_created_and_tightened_to_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
        private_dir(&data).unwrap();
        assert_eq!(mode(&data), 0o700);

        let db = data.join("simvault.db");
        prepare_database(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        let wal = data.join("simvault.db-wal");
        std::fs::write(&wal, b"").unwrap();
        std::fs::set_permissions(&wal, std::fs::Permissions::from_mode(0o666)).unwrap();
        prepare_database(&db).unwrap();
        seal_companions(&db).unwrap();
        assert_eq!((mode(&db), mode(&wal)), (0o600, 0o600));
        assert!(!data.join("simvault.db-shm").exists(), "none made up");
    }
}
