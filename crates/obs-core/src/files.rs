//! File lists as Prometheus configurations write them: globs with `*` and `?` in the last path
//! component (`rules/*.yml`, `targets-?.json`), relative to the configuration file.

use std::path::{Path, PathBuf};

/// Files matching `pattern`, sorted. A pattern without wildcards names one file, returned
/// whether or not it exists (reading it reports a missing file); a directory that does not
/// exist matches nothing.
pub fn expand_glob(base_dir: &Path, pattern: &str) -> std::io::Result<Vec<PathBuf>> {
    let full = if Path::new(pattern).is_absolute() {
        PathBuf::from(pattern)
    } else {
        base_dir.join(pattern)
    };
    let Some(file_pattern) = full.file_name().and_then(|name| name.to_str()).map(str::to_owned) else {
        return Ok(Vec::new());
    };
    if !file_pattern.contains(['*', '?']) {
        return Ok(vec![full]);
    }
    let dir = full.parent().unwrap_or(Path::new(".")).to_owned();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| wildcard_match(&file_pattern, name))
        })
        .map(|entry| entry.path())
        .collect();
    found.sort();
    Ok(found)
}

/// Whether `name` matches `pattern` (`*`: any run of characters, `?`: one character).
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(star_at) = star {
            pi = star_at + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_globs() {
        assert!(wildcard_match("*.json", "targets.json"));
        assert!(wildcard_match("t?rgets-*.yml", "targets-a.yml"));
        assert!(!wildcard_match("*.json", "targets.yml"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b*c", "aXXbYY"));
    }

    #[test]
    fn globs_list_sorted_files_and_pass_plain_names_through() {
        let dir = std::env::temp_dir().join(format!("obs-core-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["b.yml", "a.yml", "c.json"] {
            std::fs::write(dir.join(name), "").unwrap();
        }
        let found = expand_glob(&dir, "*.yml").unwrap();
        assert_eq!(found, [dir.join("a.yml"), dir.join("b.yml")]);
        assert_eq!(
            expand_glob(&dir, "missing.yml").unwrap(),
            [dir.join("missing.yml")]
        );
        assert!(expand_glob(&dir, "nowhere/*.yml").unwrap().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
