// Everything stockade offers, in one include.
#pragma once

// The core: how a call flows through a stack of policies.
#include "bounds.hpp"
#include "classifier.hpp"
#include "clock.hpp"
#include "context.hpp"
#include "describe.hpp"
#include "errors.hpp"
#include "events.hpp"
#include "manual_clock.hpp"
#include "pipeline.hpp"
#include "policy.hpp"
#include "result.hpp"
#include "stack_checks.hpp"
#include "verdict.hpp"

// The policies and what they are built from.
#include "backoff.hpp"
#include "breaker_registry.hpp"
#include "bulkhead.hpp"
#include "circuit_breaker.hpp"
#include "detached_timeout.hpp"
#include "fault_injection.hpp"
#include "health_check.hpp"
#include "random.hpp"
#include "resource.hpp"
#include "retry.hpp"
#include "retry_budget.hpp"
#include "single_flight.hpp"
#include "timeout.hpp"
#include "trip_strategy.hpp"
#include "warmup_gate.hpp"
