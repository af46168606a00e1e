# shellcheck shell=bash
# What the launch scripts share; each sources this file after setting PROG.

die_usage() {
  printf '%s: %s\n' "$PROG" "$1" >&2
  printf 'Run %s --help for usage.\n' "$PROG" >&2
  exit 2
}

# Prints one word so that a shell reads it back as it is (plain words stay plain).
quote() {
  local s=$1
  if [[ $s =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
    printf '%s' "$s"
  elif [[ $s =~ ^(--[A-Za-z0-9_.-]+=)(.*)$ ]]; then
    local flag=${BASH_REMATCH[1]} value=${BASH_REMATCH[2]}
    printf '%s' "$flag"
    quote "$value"
  else
    printf "'%s'" "${s//\'/\'\\\'\'}"
  fi
}

# The words quoted and joined with spaces.
quote_words() {
  local out=() word
  for word in "$@"; do
    out+=("$(quote "$word")")
  done
  printf '%s' "${out[*]}"
}

# A usage error when WORKDIR is a URL: the trainer writes its metrics, config.json and
# checkpoints with local file operations, so a bucket must be mounted on every host.
# $1: the hosts ("worker", "node"); $2: how to pass the mounted path instead.
reject_url_workdir() {
  case $WORKDIR in
    *://*)
      die_usage "WORKDIR=$WORKDIR: gs:// (and other URL) workdirs are not supported directly;\
 mount the bucket with gcsfuse on every $1 (e.g. gcsfuse BUCKET /mnt/BUCKET) and pass $2."
      ;;
  esac
}
