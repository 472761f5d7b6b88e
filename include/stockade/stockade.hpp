// Everything stockade offers, in one include.
#pragma once

#include "classifier.hpp"
#include "clock.hpp"
#include "context.hpp"
#include "errors.hpp"
#include "events.hpp"
#include "manual_clock.hpp"
#include "pipeline.hpp"
#include "policy.hpp"
#include "verdict.hpp"
