// Package containers is the container test suite: it runs the compose files
// under a real Docker engine as a user would (`docker compose up --build
// --wait` from the repository root, `--scale`, `kill`, `start`, `stop`,
// `down -v`), and the runtime image under plain `docker run`. The tests
// skip with the reason when no engine or no Compose v2 plugin answers,
// unless REQUIRE_DOCKER=1 (CI), which turns that into a failure.
// `make compose-test` runs only this package.
package containers
