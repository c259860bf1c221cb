//! Which files loading some SQL files reads, known without a server: the files themselves,
//! what they include (`\i`, `\ir`, `\include`, `\include_relative`) and the data files of
//! `\copy ... FROM 'file'`, with paths resolved exactly as the loader resolves them
//! ([`candidates`], [`resolve`]) and read as it reads them ([`read_regular`]: regular files
//! only). This is the one owner of those questions, for the loader, the fixture's template
//! key and anything else that must know the inputs of a load before running it.
//!
//! Statically, a branch of `\if` cannot be known to run, so files under any branch are listed;
//! `\set` values are followed in file order, so `\i :dir/x.sql` is found when `dir` was set
//! with a literal before it. A path that needs a value known only at run time (a `\gset`
//! result, an automatic variable) is not. Files that do not exist are left out: loading fails
//! on them, with their `path:line:col`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::copy::{CopySource, SlashCopy};
use crate::scan::{valid_variable_name, Item, Scanner, Variables};

/// Includes nest at most this deep, in the loader as here.
pub const MAX_INCLUDE_DEPTH: usize = 32;

/// What the loader does with a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// A SQL file: given, or included with `\i` and friends.
    Sql,
    /// A data file read by `\copy ... FROM 'file'`.
    Data,
}

/// A file that loading reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The path as errors show it: as given, or as an include resolved it (relative to the
    /// loader's root unless absolute).
    pub shown: PathBuf,
    /// The path on disk.
    pub path: PathBuf,
    /// SQL or data.
    pub kind: InputKind,
}

/// The path on disk of a file the loader names `shown`: relative paths are under `root`.
pub fn on_disk(root: &Path, shown: &Path) -> PathBuf {
    if shown.is_absolute() {
        shown.to_path_buf()
    } else {
        root.join(shown)
    }
}

/// Where a file that meta-command `command` names with `target` in the file shown as
/// `including` (of the load's top-level file `top`) is looked for, in order (paths as shown,
/// relative to the root), each with why there. `\ir` and `\include_relative`: beside the
/// including file only. `\i`, `\include`, `\copy` (and `\o`): first as psql would, from
/// its working directory, for which the project root stands; then as psql run from the
/// top-level file's directory would (`cd db && psql -f install.sql`); then beside the file
/// holding the command.
pub fn candidates(
    command: &str,
    including: &Path,
    top: &Path,
    target: &str,
) -> Vec<(PathBuf, &'static str)> {
    const ROOT: &str = "from the project root, as psql from its working directory";
    const TOP: &str = "from the directory of the file loaded, as psql run there";
    const BESIDE: &str = "beside the file holding the command";
    let target = Path::new(target);
    let beside = |file: &Path| {
        file.parent()
            .map_or_else(|| target.to_path_buf(), |dir| dir.join(target))
    };
    if matches!(command, "ir" | "include_relative") {
        return vec![(beside(including), BESIDE)];
    }
    if target.is_absolute() {
        return vec![(target.to_path_buf(), "as given")];
    }
    let mut out: Vec<(PathBuf, &'static str)> = vec![(target.to_path_buf(), ROOT)];
    let tops = (top != including).then(|| (beside(top), TOP));
    for (path, why) in tops.into_iter().chain([(beside(including), BESIDE)]) {
        if !out.iter().any(|(p, _)| *p == path) {
            out.push((path, why));
        }
    }
    out
}

/// The first of `candidates` (as shown) that exists under `root`, else `None`. One that exists
/// but cannot be looked at (no permission) counts as found: reading it reports why.
pub fn resolve(root: &Path, candidates: &[(PathBuf, &'static str)]) -> Option<PathBuf> {
    candidates
        .iter()
        .find(|(shown, _)| match std::fs::metadata(on_disk(root, shown)) {
            Ok(_) => true,
            Err(e) => e.kind() != std::io::ErrorKind::NotFound,
        })
        .map(|(shown, _)| shown.clone())
}

/// Why a file cannot be read as a SQL or data file.
#[derive(Debug)]
pub enum ReadError {
    /// It is not a regular file: what it is.
    NotRegular(&'static str),
    /// Opening or reading it failed.
    Io(std::io::Error),
}

/// What `file_type` is when it is not a regular file (`None` for a regular file): a FIFO
/// or a device would block a read or never end it.
pub fn not_regular(file_type: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt as _;
    Some(if file_type.is_file() {
        return None;
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO (named pipe)"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    })
}

/// Reads a whole regular file, refusing anything else before reading a byte: it is opened
/// without blocking (a FIFO with no writer would block the open itself) and looked at
/// through the open file, then no more than the size it had is read.
pub fn read_regular(path: &Path) -> Result<Vec<u8>, ReadError> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(path)
        .map_err(ReadError::Io)?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if let Some(kind) = not_regular(meta.file_type()) {
        return Err(ReadError::NotRegular(kind));
    }
    let len = meta.len();
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(len)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    Ok(bytes)
}

/// Every file that loading `files` (in order, under `root`, with the variables `vars` set
/// before the first, as `psql -v` sets them) reads, each once, in the order the loader first
/// reads it. See the module documentation for what a static reading can know.
pub fn files_read<P: AsRef<Path>>(root: &Path, files: &[P], vars: &Variables) -> Vec<Input> {
    let mut walk = Walk {
        root,
        seen: HashSet::new(),
        out: Vec::new(),
        vars: vars.clone(),
        top: PathBuf::new(),
    };
    for file in files {
        walk.top = file.as_ref().to_path_buf();
        walk.sql(file.as_ref(), 0);
    }
    walk.out
}

struct Walk<'r> {
    root: &'r Path,
    seen: HashSet<PathBuf>,
    out: Vec<Input>,
    /// `\set` values so far, as one psql run carries them from file to file.
    vars: Variables,
    /// The top-level file being walked.
    top: PathBuf,
}

impl Walk<'_> {
    /// Records `shown` if it exists and was not seen; returns its bytes when it is new.
    fn add(&mut self, shown: &Path, kind: InputKind) -> Option<Vec<u8>> {
        let path = on_disk(self.root, shown);
        let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if self.seen.contains(&key) {
            return None;
        }
        let bytes = read_regular(&path).ok()?;
        self.seen.insert(key);
        self.out.push(Input {
            shown: shown.to_path_buf(),
            path,
            kind,
        });
        Some(bytes)
    }

    fn sql(&mut self, shown: &Path, depth: usize) {
        if depth > MAX_INCLUDE_DEPTH {
            return;
        }
        let Some(bytes) = self.add(shown, InputKind::Sql) else {
            return;
        };
        let mut scanner = Scanner::new(&bytes);
        scanner.vars = std::mem::take(&mut self.vars);
        while let Some(item) = scanner.next_item() {
            let Item::Meta(meta) = item else {
                continue;
            };
            match (meta.name.as_str(), meta.args.as_slice()) {
                ("i" | "include" | "ir" | "include_relative", [target]) => {
                    let candidates = candidates(&meta.name, shown, &self.top, target);
                    let Some(next) = resolve(self.root, &candidates) else {
                        continue;
                    };
                    self.vars = std::mem::take(&mut scanner.vars);
                    self.sql(&next, depth + 1);
                    scanner.vars = std::mem::take(&mut self.vars);
                }
                ("copy", [line]) => {
                    if let Ok(SlashCopy {
                        source: CopySource::File(target),
                        ..
                    }) = SlashCopy::parse(line)
                    {
                        if let Some(data) =
                            resolve(self.root, &candidates("copy", shown, &self.top, &target))
                        {
                            self.add(&data, InputKind::Data);
                        }
                    }
                }
                ("set", [name, values @ ..]) if valid_variable_name(name) => {
                    scanner.vars.insert(name.clone(), values.concat());
                }
                ("unset", [name]) => {
                    scanner.vars.remove(name);
                }
                _ => {}
            }
        }
        self.vars = std::mem::take(&mut scanner.vars);
    }
}
