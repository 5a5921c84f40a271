# Content-addressed cache of built hook components, sourced by each example's
# build.sh (every example holds a link to this file, so a copy made with
# `cp -rL` carries it along).
#
# The key is a hash of everything a build reads: the example's sources, the
# WIT package, the build script, this file and the pinned toolchain versions.
# A hit copies the stored component into the output directory and skips the
# build; a miss builds and stores. Entries live in
#   ${SLUICE_HOOK_BUILD_CACHE:-~/.cache/sluice/hook-builds}/<key>/<component>
# and are never changed once written. SLUICE_HOOK_BUILD_CACHE=off turns the
# cache off (every build runs). POSIX sh: the Rust scripts are /bin/sh.

hook_cache_root=${SLUICE_HOOK_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/hook-builds}

# hook_cache_key TEXT PATH...: the key of the files' names (relative to
# $here) and contents, directories walked, plus TEXT (toolchain versions,
# build variant).
hook_cache_key() {
    _text=$1
    shift
    {
        printf '%s\n' "$_text"
        for _p in "$@"; do
            if [ -d "$_p" ]; then find "$_p" -type f | LC_ALL=C sort; else printf '%s\n' "$_p"; fi
        done | while IFS= read -r _f; do
            # The name, the size and the bytes: no two file sets hash alike.
            printf '\n%s %s\n' "${_f#"$here"/}" "$(wc -c <"$_f" | tr -d ' ')"
            cat "$_f"
        done
    } | { sha256sum 2>/dev/null || shasum -a 256; } | cut -c1-32
}

# hook_cache_fetch KEY OUT NAME: put the component NAME built from KEY at
# OUT/NAME. Succeeds when it is already there (its .stamp holds the key) or
# the cache has it; fails on a miss.
hook_cache_fetch() {
    if [ -f "$2/$3" ] && [ "$(cat "$2/$3.stamp" 2>/dev/null)" = "$1" ]; then
        echo "build.sh: $2/$3 is up to date (key $1)" >&2
        return 0
    fi
    [ "$hook_cache_root" != off ] && [ -f "$hook_cache_root/$1/$3" ] || {
        echo "build.sh: $3: not in the build cache (key $1), building" >&2
        return 1
    }
    cp "$hook_cache_root/$1/$3" "$2/$3.tmp.$$"
    mv -f "$2/$3.tmp.$$" "$2/$3"
    echo "$1" >"$2/$3.stamp"
    echo "build.sh: $2/$3 from the build cache (key $1)" >&2
}

# hook_cache_store KEY OUT NAME: remember the freshly built OUT/NAME.
hook_cache_store() {
    echo "$1" >"$2/$3.stamp"
    [ "$hook_cache_root" != off ] || return 0
    mkdir -p "$hook_cache_root/$1"
    # Write then rename: a reader never sees half a component.
    cp "$2/$3" "$hook_cache_root/$1/$3.tmp.$$"
    mv -f "$hook_cache_root/$1/$3.tmp.$$" "$hook_cache_root/$1/$3"
}
