/*
 * actorflow: the whole public API.
 */
#ifndef ACTORFLOW_H
#define ACTORFLOW_H

#include "actorflow/actor.h"
#include "actorflow/chat.h"
#include "actorflow/client.h"
#include "actorflow/curve.h"
#include "actorflow/err.h"
#include "actorflow/gather.h"
#include "actorflow/offload.h"
#include "actorflow/payload.h"
#include "actorflow/query.h"
#include "actorflow/retrieval.h"

#define AF_VERSION_MAJOR 0
#define AF_VERSION_MINOR 1
#define AF_VERSION_PATCH 0

#endif
