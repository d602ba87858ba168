// @contentstack/personalize-edge-sdk, unmodified, against a live Strata.
// Run by tests/experiences/test_personalize_sdk.py:
//   STRATA_URL=http://127.0.0.1:PORT STRATA_PROJECT=<account aid> node personalize.mjs
// Prints one JSON object: what the SDK saw at each step.
import sdkPackage from '@contentstack/personalize-edge-sdk';

const Personalize = sdkPackage.default ?? sdkPackage;
const base = process.env.STRATA_URL;
const project = process.env.STRATA_PROJECT;
const out = {};

Personalize.setEdgeApiUrl(`${base}/personalize`);

// An unknown project: the SDK reads Strata's 404 as "project not found".
try {
  await Personalize.init('no-such-project');
  out.unknownProject = 'initialised';
} catch (error) {
  out.unknownProject = error.message;
}

// A new visitor: the manifest mints the user uid; the SDK builds the aliases itself.
const sdk = await Personalize.init(project, { liveAttributes: { plan: 'pro' } });
out.userId = sdk.getUserId();
out.experiences = sdk.getExperiences();
out.variants = sdk.getVariants();
out.aliases = sdk.getVariantAliases();
out.variantParam = sdk.getVariantParam();
out.activeVariant = sdk.getActiveVariant('a');

// Attributes, impressions (by experience and by alias), a custom event.
await sdk.set({ email: 'node@example.com', plan: 'pro' });
await sdk.triggerImpression('a');
await sdk.triggerImpressions({ aliases: out.aliases });
await sdk.triggerEvent('booked');

// The visitor logs in: their attributes and experiences follow the new user id.
await sdk.setUserId('user-42', { preserveUserAttributes: true });
out.loggedInUserId = sdk.getUserId();
const again = await Personalize.init(project, { userId: 'user-42' });
out.loggedInVariants = again.getVariants();
await again.triggerEvent('booked');

console.log(JSON.stringify(out));
