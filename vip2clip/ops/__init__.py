"""Operating vip2clip on Ray: job submission, auth tokens, runtime env, local clusters."""
