// Everything stockade offers, in one include.
#pragma once

// The core: how a call flows through a stack of policies.
#include "classifier.hpp"
#include "clock.hpp"
#include "context.hpp"
#include "errors.hpp"
#include "events.hpp"
#include "manual_clock.hpp"
#include "pipeline.hpp"
#include "policy.hpp"
#include "verdict.hpp"

// The policies and what they are built from.
#include "backoff.hpp"
#include "bulkhead.hpp"
#include "detached_timeout.hpp"
#include "fault_injection.hpp"
#include "random.hpp"
#include "retry.hpp"
#include "retry_budget.hpp"
#include "timeout.hpp"
