//! Where `convert` and `export` write: an output path opened the way a user expects of a
//! command-line tool, so that writing never destroys a file that is not ours.
//!
//! - `-` is standard output.
//! - A symlink stays a symlink: what it points to is written (a chain of links is followed).
//! - A device, FIFO or socket is written into as it is, never replaced or removed; so is
//!   anything under `/dev` or `/proc` (`/dev/stdout` redirected to a file appends to it).
//! - A regular file (or a path where nothing is yet) is replaced as a whole: the output goes to
//!   a temporary file in the same folder as the final file, which is renamed over it only once
//!   everything is written, so a failed run leaves the old file untouched. A replaced file
//!   keeps its permissions.
//!
//! If the run fails (or the [`Output`] is dropped before [`Output::commit`]), only the
//! temporary file this run created is removed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Stdout, Write};
use std::path::{Path, PathBuf};

/// Symlinks followed before giving up, as the kernel does (`ELOOP`).
const MAX_SYMLINK_HOPS: usize = 40;

/// An open output; write to it, then [`commit`](Self::commit) it.
#[derive(Debug)]
pub struct Output {
    target: Target,
}

#[derive(Debug)]
enum Target {
    /// Standard output (`-`).
    Stdout(BufWriter<Stdout>),
    /// A device, FIFO or socket, written in place.
    InPlace(BufWriter<File>),
    /// A temporary file to be renamed onto `destination` on commit.
    Replacement {
        /// `None` once committed or abandoned.
        file: Option<BufWriter<File>>,
        temporary: PathBuf,
        destination: PathBuf,
    },
}

impl Output {
    /// Opens `path` for writing as the [module docs](self) say.
    pub fn create(path: &Path) -> io::Result<Output> {
        if path.as_os_str() == "-" {
            return Ok(Output { target: Target::Stdout(BufWriter::new(io::stdout())) });
        }
        // The kernel follows the links here, /proc's magic links (`/dev/stdout`) included.
        match fs::metadata(path) {
            Ok(metadata) if metadata.is_dir() => {
                Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory"))
            }
            Ok(metadata) if !metadata.is_file() || is_system_path(path) => {
                // `/dev/stdout` redirected to a file (`>` or `>>`) is appended to, as the shell
                // opened it: reopening it through /proc would start at offset 0.
                let file = OpenOptions::new().append(metadata.is_file()).write(true).open(path)?;
                Ok(Output { target: Target::InPlace(BufWriter::new(file)) })
            }
            Ok(metadata) => {
                Output::replacing(fs::canonicalize(path)?, Some(metadata.permissions()))
            }
            // Nothing there yet, or a dangling symlink: create what the link names.
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                Output::replacing(follow_symlinks(path)?, None)
            }
            Err(error) => Err(error),
        }
    }

    /// An output that will replace (or create) the regular file `destination`.
    fn replacing(destination: PathBuf, permissions: Option<fs::Permissions>) -> io::Result<Output> {
        let (temporary, file) = create_temporary_beside(&destination)?;
        let output = Output {
            target: Target::Replacement {
                file: Some(BufWriter::new(file)),
                temporary,
                destination,
            },
        };
        if let (Some(permissions), Target::Replacement { file: Some(file), .. }) =
            (permissions, &output.target)
        {
            // Dropping `output` on failure removes the temporary file.
            file.get_ref().set_permissions(permissions)?;
        }
        Ok(output)
    }

    /// Flushes what was written and, for a regular file, puts it in place.
    pub fn commit(mut self) -> io::Result<()> {
        match &mut self.target {
            Target::Stdout(out) => out.flush(),
            Target::InPlace(out) => out.flush(),
            Target::Replacement { file, temporary, destination } => {
                let Some(out) = file.take() else { return Ok(()) };
                // The file is closed before the rename, which some systems require.
                let result =
                    out.into_inner().map_err(io::IntoInnerError::into_error).and_then(|file| {
                        drop(file);
                        fs::rename(&*temporary, &*destination)
                    });
                if result.is_err() {
                    // Best effort: the error being reported matters more than a leftover.
                    let _ = fs::remove_file(&*temporary);
                }
                result
            }
        }
    }

    fn writer(&mut self) -> &mut dyn Write {
        match &mut self.target {
            Target::Stdout(out) => out,
            Target::InPlace(out) => out,
            Target::Replacement { file: Some(out), .. } => out,
            Target::Replacement { file: None, .. } => {
                unreachable!("an Output is written only before commit consumes it; this is a bug")
            }
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer().write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer().flush()
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Target::Replacement { file, temporary, .. } = &mut self.target {
            if file.take().is_some() {
                // Not committed: the run failed. Remove only the file we created.
                let _ = fs::remove_file(&*temporary);
            }
        }
    }
}

/// Whether `path` names a file of the system (`/dev/stdout`, `/proc/self/fd/1`): written in
/// place, never replaced, whatever it leads to.
fn is_system_path(path: &Path) -> bool {
    path.starts_with("/dev") || path.starts_with("/proc")
}

/// `path` with every symlink on its last component followed: the file that writing through
/// `path` creates, when nothing exists there yet (a new file, or a dangling link).
fn follow_symlinks(path: &Path) -> io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_SYMLINK_HOPS {
        match fs::symlink_metadata(&current) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                let link = fs::read_link(&current)?;
                current = match current.parent() {
                    Some(folder) if link.is_relative() => folder.join(link),
                    _ => link,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

/// Creates a new, empty temporary file in the folder of `destination`, never replacing
/// anything already there.
fn create_temporary_beside(destination: &Path) -> io::Result<(PathBuf, File)> {
    let folder = match destination.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    let name = destination.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let mut attempt = 0u32;
    loop {
        let temporary =
            folder.join(format!(".{name}.{}.{attempt}.hindsight-tmp", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&temporary) {
            Ok(file) => return Ok((temporary, file)),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1
            }
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir()
            .join(format!("hindsight-output-unit-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("a scratch directory");
        dir
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("readable")
            .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_new_file_is_written_and_nothing_else_is_left() {
        let dir = scratch("new");
        let path = dir.join("out.txt");
        let mut out = Output::create(&path).unwrap();
        out.write_all(b"hello").unwrap();
        out.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"hello");
        assert_eq!(entries(&dir), ["out.txt"]);
    }

    #[test]
    fn an_uncommitted_output_leaves_the_old_file_and_no_temporary() {
        let dir = scratch("abandoned");
        let path = dir.join("out.txt");
        fs::write(&path, "old").unwrap();
        let mut out = Output::create(&path).unwrap();
        out.write_all(b"new").unwrap();
        drop(out);
        assert_eq!(fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(entries(&dir), ["out.txt"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_chain_of_symlinks_is_followed_and_kept_and_permissions_too() {
        use std::os::unix::fs::{symlink, PermissionsExt};
        let dir = scratch("links");
        let real = dir.join("real.txt");
        fs::write(&real, "old").unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o640)).unwrap();
        symlink("real.txt", dir.join("one")).unwrap();
        symlink(dir.join("one"), dir.join("two")).unwrap();
        let mut out = Output::create(&dir.join("two")).unwrap();
        out.write_all(b"new").unwrap();
        out.commit().unwrap();
        assert_eq!(fs::read_to_string(&real).unwrap(), "new");
        assert!(fs::symlink_metadata(dir.join("one")).unwrap().file_type().is_symlink());
        assert!(fs::symlink_metadata(dir.join("two")).unwrap().file_type().is_symlink());
        assert_eq!(fs::metadata(&real).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(entries(&dir), ["one", "real.txt", "two"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_dangling_symlink_gets_its_target_created() {
        let dir = scratch("dangling");
        std::os::unix::fs::symlink("made.txt", dir.join("link")).unwrap();
        let mut out = Output::create(&dir.join("link")).unwrap();
        out.write_all(b"x").unwrap();
        out.commit().unwrap();
        assert_eq!(fs::read_to_string(dir.join("made.txt")).unwrap(), "x");
        assert!(fs::symlink_metadata(dir.join("link")).unwrap().file_type().is_symlink());
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_loop_is_an_error() {
        let dir = scratch("loop");
        std::os::unix::fs::symlink("b", dir.join("a")).unwrap();
        std::os::unix::fs::symlink("a", dir.join("b")).unwrap();
        assert!(Output::create(&dir.join("a")).is_err());
        assert_eq!(entries(&dir), ["a", "b"]);
    }

    #[test]
    fn a_directory_is_an_error() {
        let dir = scratch("dir");
        let error = Output::create(&dir).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::IsADirectory);
        assert!(entries(&dir).is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_device_is_written_in_place_and_its_errors_reported() {
        use std::os::unix::fs::FileTypeExt;
        let mut out = Output::create(Path::new("/dev/full")).unwrap();
        out.write_all(b"x").unwrap();
        assert!(out.commit().is_err());
        assert!(fs::metadata("/dev/full").unwrap().file_type().is_char_device());
    }
}
