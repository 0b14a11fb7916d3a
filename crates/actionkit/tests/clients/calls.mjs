// The four calls every client script makes, with the same data in every library, so that the
// Rust tests can say exactly what Userpilot must receive for a run tag.
//
// This module is plain ECMAScript with no imports: Node loads it from the scripts, and the test
// page loads the same file in the browser.

/** The ids of a run: every id derives from the run tag, so runs never mix. */
export function idsFor(tag) {
  return { userId: `${tag}-user`, groupId: `${tag}-company` };
}

/**
 * The calls of a run, in the order they are made: identify, track, group and page. Each has
 * the arguments a library needs; `key` names the call in reports and on the test page.
 */
export function callsFor(tag) {
  const { userId, groupId } = idsFor(tag);
  return [
    {
      key: "identify",
      type: "identify",
      userId,
      traits: {
        // Non-ASCII text, a number, a nested object and a creation date, which the Userpilot
        // destination moves to `metadata.created_at`.
        name: "Zoë Ångström",
        email: `${userId}@example.com`,
        plan: "growth",
        logins: 7,
        createdAt: "2021-03-04T05:06:07Z",
        address: { city: "Köln", country: "DE" },
      },
    },
    {
      key: "track",
      type: "track",
      userId,
      event: "Order Completed",
      properties: {
        revenue: 42.5,
        currency: "EUR",
        products: [
          { sku: "A-1", quantity: 2 },
          { sku: "B-2", quantity: 1 },
        ],
        coupon: null,
        gift: false,
      },
    },
    {
      key: "group",
      type: "group",
      userId,
      groupId,
      traits: { name: "Acme GmbH", plan: "enterprise", employees: 250, createdAt: "2019-01-01" },
    },
    {
      key: "page",
      type: "page",
      userId,
      category: "Docs",
      name: "Getting Started",
      properties: { path: "/docs/start", title: "Start" },
    },
  ];
}

/**
 * Whether `event`, as a library put it on the wire, is the one `call` made: same type and the
 * same distinguishing id or name.
 */
export function eventMatchesCall(event, call) {
  if (!event || event.type !== call.type) {
    return false;
  }
  switch (call.type) {
    case "identify":
      return event.userId === call.userId;
    case "track":
      return event.userId === call.userId && event.event === call.event;
    case "group":
      return event.groupId === call.groupId;
    case "page":
      return event.userId === call.userId && event.name === call.name;
    default:
      return false;
  }
}

/**
 * Makes `call` on a server library whose methods take one object and a callback, as Segment's
 * analytics-node and RudderStack's Node SDK both do; `done(error, ctx)` is that callback.
 */
export function sendCall(client, call, done) {
  switch (call.type) {
    case "identify":
      return client.identify({ userId: call.userId, traits: call.traits }, done);
    case "track":
      return client.track(
        { userId: call.userId, event: call.event, properties: call.properties },
        done,
      );
    case "group":
      return client.group({ userId: call.userId, groupId: call.groupId, traits: call.traits }, done);
    case "page":
      return client.page(
        {
          userId: call.userId,
          category: call.category,
          name: call.name,
          properties: call.properties,
        },
        done,
      );
    default:
      throw new Error(`no such call type: ${call.type}`);
  }
}
