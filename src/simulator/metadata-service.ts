import type { ServiceImpl } from '@connectrpc/connect';
import { Code, ConnectError } from '@connectrpc/connect';
import type { OrganizationService } from '@zitadel/proto/zitadel/org/v2beta/org_service_pb.js';
import type { UserService } from '@zitadel/proto/zitadel/user/v2/user_service_pb.js';
import { simulateCall } from './calls.js';
import type { SimulatorState } from './state.js';

/** User metadata (UserService v2 ListUserMetadata) and organisation metadata (OrganizationService v2beta). */

function entries(metadata: Map<string, string> | undefined, key: string | undefined) {
  const list = [...(metadata ?? new Map<string, string>())].filter(([name]) => key === undefined || name === key);
  const encoded = list.map(([name, value]) => ({ key: name, value: new TextEncoder().encode(value) }));
  return { metadata: encoded, pagination: { totalResult: BigInt(encoded.length), appliedLimit: 100n } };
}

export function userServiceImpl(state: SimulatorState): Partial<ServiceImpl<typeof UserService>> {
  return {
    listUserMetadata: (request, context) =>
      simulateCall(state, context.requestHeader.get('authorization'), { method: 'ListUserMetadata', permission: 'user.read', userId: request.userId }, () => {
        if (!state.users.has(request.userId) && !state.userMetadata.has(request.userId)) {
          throw new ConnectError('Errors.User.NotFound', Code.NotFound);
        }
        const filter = request.filters.find((f) => f.filter.case === 'keyFilter');
        return entries(state.userMetadata.get(request.userId), filter?.filter.case === 'keyFilter' ? filter.filter.value.key : undefined);
      }),
  };
}

export function organizationServiceImpl(state: SimulatorState): Partial<ServiceImpl<typeof OrganizationService>> {
  return {
    listOrganizationMetadata: (request, context) =>
      simulateCall(state, context.requestHeader.get('authorization'), { method: 'ListOrganizationMetadata', permission: 'org.read' }, () => {
        const query = request.filter.find((f) => f.query.case === 'keyQuery');
        return entries(state.orgMetadata.get(request.organizationId), query?.query.case === 'keyQuery' ? query.query.value.key : undefined);
      }),
  };
}
