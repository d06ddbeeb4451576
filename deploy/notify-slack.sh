#!/bin/sh
# notify-slack.sh: post a one-line account of a ballast run to a Slack-style incoming
# webhook (Slack, Mattermost, Rocket.Chat: anything that takes {"text": "..."}).
#
# Use it as a hook in a pipeline file (e.g. pipelines/deploy.toml beside deploy.toml;
# the Docker image ships it at /usr/local/libexec/ballast/notify-slack.sh):
#
#   [on_failure]
#   hooks = ["/usr/local/libexec/ballast/notify-slack.sh"]
#
# and put the webhook in ballast's environment as SLACK_WEBHOOK_URL (a Kubernetes
# Secret, a CI secret). ballast hands a hook the run's JSON summary on stdin, and
# BALLAST_RUN_ID, BALLAST_DATABASE (password removed), BALLAST_BACKUP, BALLAST_PIPELINE,
# BALLAST_FAILED_STAGE, BALLAST_OUTCOME and BALLAST_EXIT_CODE in its environment. With
# jq the summary is read (it also has the error); without jq, or without a summary,
# the variables alone make the message.
#
# A notification must never change a deploy's outcome: this script always exits 0 and
# says on stderr why it did not post. The webhook URL is a secret (whoever has it can
# post to the channel): it is never printed, and it reaches curl on its stdin rather
# than its command line, so `ps` does not show it either.

set -u
# Whatever happens below, the hook itself succeeds.
trap 'exit 0' EXIT

say() { printf 'notify-slack: %s\n' "$*" >&2; }

# Text as a JSON string literal, without jq: tabs, newlines and other control
# characters become spaces (or go), backslashes and double quotes are escaped.
json_string() {
    printf '%s' "$1" | tr '\011\012\015' '   ' | tr -d '\000-\037' |
        sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$/"/'
}

# Anything URL-shaped in a message is masked: curl's errors must not leak the webhook.
mask_urls() {
    printf '%s' "$1" | sed -e 's#[A-Za-z][A-Za-z0-9+.-]*://[^[:space:]]*#<webhook URL>#g'
}

if [ -z "${SLACK_WEBHOOK_URL:-}" ]; then
    say "SLACK_WEBHOOK_URL is not set; nothing posted"
    exit 0
fi
if ! command -v curl >/dev/null 2>&1; then
    say "curl is not installed; nothing posted"
    exit 0
fi

# The environment first; the JSON summary, when it can be read, over it.
run_id=${BALLAST_RUN_ID:-}
pipeline=${BALLAST_PIPELINE:-}
outcome=${BALLAST_OUTCOME:-}
exit_code=${BALLAST_EXIT_CODE:-}
failed_stage=${BALLAST_FAILED_STAGE:-}
backup=${BALLAST_BACKUP:-}
database=${BALLAST_DATABASE:-}
error=""

summary=""
# A terminal on stdin means someone ran this by hand: never wait for input.
if [ ! -t 0 ]; then
    summary=$(cat) || summary=""
fi

have_jq=false
command -v jq >/dev/null 2>&1 && have_jq=true

if [ -n "$summary" ] && $have_jq; then
    # @sh quotes every value for the shell, so eval only ever assigns strings.
    fields=$(printf '%s' "$summary" | jq -r '
        def s(f): (f // "") | tostring;
        @sh "j_run_id=\(s(.run_id)) j_pipeline=\(s(.pipeline)) j_outcome=\(s(.outcome)) j_exit_code=\(s(.exit_code)) j_failed_stage=\(s(.failed_stage)) j_backup=\(s(.backup)) j_error=\(s(.error) | gsub("\\s+"; " ") | .[0:300])"
    ' 2>/dev/null)
    if [ -n "$fields" ]; then
        eval "$fields"
        [ -n "$j_run_id" ] && run_id=$j_run_id
        [ -n "$j_pipeline" ] && pipeline=$j_pipeline
        [ -n "$j_outcome" ] && outcome=$j_outcome
        [ -n "$j_exit_code" ] && exit_code=$j_exit_code
        [ -n "$j_failed_stage" ] && failed_stage=$j_failed_stage
        [ -n "$j_backup" ] && backup=$j_backup
        error=$j_error
    else
        say "the summary on stdin is not JSON; using the BALLAST_* variables"
    fi
fi

case $outcome in
    succeeded) icon=':white_check_mark:' meaning='succeeded' ;;
    failed-unchanged) icon=':warning:' meaning='failed; the database is as the run found it' ;;
    refused) icon=':no_entry:' meaning='refused; nothing changed' ;;
    failed-not-recovered) icon=':rotating_light:' meaning='FAILED and NOT recovered: a human must look' ;;
    *) icon=':grey_question:' meaning='ended' ;;
esac

text="$icon ballast ${pipeline:-run} on ${database:-an unnamed database}: $meaning"
text="$text [outcome ${outcome:-unknown}, exit ${exit_code:-unknown}]"
[ -n "$failed_stage" ] && text="$text; failed stage: $failed_stage"
[ -n "$error" ] && text="$text; error: $error"
[ -n "$backup" ] && text="$text; backup: $backup"
[ -n "$run_id" ] && text="$text; run $run_id"
# In Kubernetes, the pod's name: where to read the full log.
[ -n "${HOSTNAME:-}" ] && text="$text (from $HOSTNAME)"

if $have_jq; then
    payload=$(jq -cn --arg text "$text" '{text: $text}')
else
    payload="{\"text\":$(json_string "$text")}"
fi

# curl reads the URL from a config line on its stdin. --write-out puts the HTTP status
# on the last line of the output; anything before it is curl's own error message.
url_line="url = $(json_string "$SLACK_WEBHOOK_URL")"
out=$(printf '%s\n' "$url_line" | curl --config - --silent --show-error \
    --max-time 15 --retry 2 --retry-delay 1 \
    --header 'Content-Type: application/json' --header 'Expect:' \
    --data-binary "$payload" --output /dev/null --write-out '\n%{http_code}' 2>&1)
rc=$?
status=$(printf '%s\n' "$out" | tail -n 1)
# With retries curl may say the same thing several times: its last word is enough.
message=$(printf '%s\n' "$out" | sed -e '$d' -e '/^$/d' | tail -n 1)

if [ "$rc" -ne 0 ]; then
    say "could not post to the webhook (curl exit $rc: $(mask_urls "$message"))"
else
    case $status in
        2??) ;;
        *) say "the webhook answered HTTP $status; the message was not accepted" ;;
    esac
fi
exit 0
