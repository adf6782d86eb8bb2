package demo

import (
	"context"
	"crypto/rand"

	"github.com/microshop/microshop/internal/loadgen"
	"github.com/microshop/microshop/internal/localrun"
)

// system is one `microshop run` that a demo started for itself with
// localrun's launcher: a child process of the demo, in its own data
// directory, on free ports.
type system struct {
	*localrun.System
	// AdminEmail and AdminPassword are the admin account run was told to
	// make (through its environment).
	AdminEmail, AdminPassword string
}

// baseEnv is what every demo's system runs with: a known admin account
// and no rate limits, since one client sends every request.
func baseEnv(adminEmail, adminPassword string) []string {
	return append(loadgen.Unlimited(), "MICROSHOP_ADMIN_EMAIL="+adminEmail, "MICROSHOP_ADMIN_PASSWORD="+adminPassword)
}

// startSystem runs `opts.Exe run` with env added to this process's
// environment (the scenario's settings override the caller's), and
// returns once run says every service is ready.
func startSystem(ctx context.Context, opts Options, env []string) (*system, error) {
	return startSystemWith(ctx, opts, env, nil)
}

// startSystemWith is startSystem with more flags of run, such as
// "--mode", "monolith".
func startSystemWith(ctx context.Context, opts Options, env, args []string) (*system, error) {
	s := &system{AdminEmail: "admin@demo.microshop.local", AdminPassword: "demo-" + rand.Text()}
	ls, err := localrun.Launch(ctx, localrun.LaunchOptions{Binary: opts.Exe, Data: opts.DataDir, Args: args,
		Env: append(baseEnv(s.AdminEmail, s.AdminPassword), env...)})
	if err != nil {
		return nil, err
	}
	s.System = ls
	return s, nil
}

// processes lists the processes that run supervises.
func (s *system) processes(ctx context.Context) ([]localrun.Process, error) {
	st, err := s.Status(ctx)
	return st.Services, err
}

// running returns the running replicas of name.
func (s *system) running(ctx context.Context, name string) ([]localrun.Process, error) {
	st, err := s.Status(ctx)
	return st.Running(name), err
}

// has reports whether the system holds a process called name at all.
func (s *system) has(ctx context.Context, name string) (bool, error) {
	procs, err := s.processes(ctx)
	for _, p := range procs {
		if p.Name == name {
			return true, err
		}
	}
	return false, err
}
